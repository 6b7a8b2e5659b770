"""Readers, the confined source root and field expressions: the kit every source stands on."""

import io
import json
import os
import pickle
import tarfile
import zipfile

import pytest

from m4_pipeline.errors import SourceError
from m4_pipeline.paths import AnnotationFileError, SourceRoot, UnsafePathError, confined_output
from m4_pipeline.readers import ArchiveSet, UnsafePickleError, get_reader, iter_tar_members, jsonfmt, loads_data
from m4_pipeline.templates import TemplateError, choose, evaluate, fields_of, render


def items(reader, src, rel, **kw):
    return [(i.locator, i.data, i.error) for i in get_reader(reader, **kw).read_file(src, rel)]


# --- the confined root ------------------------------------------------------------------------


def test_source_root_refuses_escapes(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("MARKER")
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "ok.txt").write_text("fine")
    os.symlink(outside / "secret.txt", root / "a" / "link.txt")
    os.symlink(outside, root / "dirlink")
    os.symlink(root / "a" / "ok.txt", root / "inner.txt")
    src = SourceRoot(root)
    assert src.read_bytes("a/ok.txt") == b"fine" and src.read_bytes("./a//ok.txt") == b"fine"
    for bad in (str(outside / "secret.txt"), "../outside/secret.txt", "a/../../outside/secret.txt",
                "a/link.txt", "dirlink/secret.txt", "inner.txt", "C:/x", "a\x00b"):  # fmt: skip
        with pytest.raises(UnsafePathError) as err:
            src.read_bytes(bad)
        assert err.value.reason == "unsafe_path"
    inside = SourceRoot(root, symlinks="inside")
    assert inside.read_bytes("inner.txt") == b"fine"  # a link that stays inside, when the recipe allows it
    with pytest.raises(UnsafePathError, match="leaving the source root"):
        inside.read_bytes("dirlink/secret.txt")
    assert src.glob("**/*.txt") == ["a/ok.txt"]  # links are not listed
    with pytest.raises(SourceError) as err:
        src.file(["a", "list"])
    assert err.value.reason == "invalid_annotation"
    with pytest.raises(UnsafePathError):
        confined_output(tmp_path / "out", "../escape.tar")


# --- JSON ----------------------------------------------------------------------------------------


def test_json_list_streams_like_json_load(tmp_path, monkeypatch):
    data = [{"id": i, "text": "x" * (i % 7), "n": 1234567 + i, "nested": {"a": [i, "]"]}} for i in range(40)]
    (tmp_path / "a.json").write_text("\ufeff " + json.dumps(data, indent=1))
    monkeypatch.setattr(jsonfmt, "CHUNK", 7)  # items and numbers cut at every chunk boundary
    got = items("json", SourceRoot(tmp_path), "a.json")
    assert [d for _, d, _ in got] == data and got[3][0] == "index 3"
    (tmp_path / "b.json").write_text('[{"a": 1}, {"a": 2,}]')
    with pytest.raises(AnnotationFileError, match="b.json at byte 11: malformed JSON in item 1"):
        items("json", SourceRoot(tmp_path), "b.json")
    (tmp_path / "c.json").write_bytes(b'[{"a": "\xff"}]')
    with pytest.raises(AnnotationFileError, match="c.json near byte 8: not valid UTF-8"):
        items("json", SourceRoot(tmp_path), "c.json")
    (tmp_path / "d.json").write_text(json.dumps({"metadata": {}, "data": [{"x": 1}]}))
    assert items("json", SourceRoot(tmp_path), "d.json", field="data") == [("index 0", {"x": 1}, None)]
    with pytest.raises(AnnotationFileError, match="expected a JSON list"):
        items("json", SourceRoot(tmp_path), "d.json")
    (tmp_path / "e.json").write_text(json.dumps({"database": {"v1": {"duration": 3}, "v2": 5}}))
    assert items("json_dict", SourceRoot(tmp_path), "e.json", field="database") == [
        ("key v1", {"_key": "v1", "duration": 3}, None),
        ("key v2", {"_key": "v2", "_value": 5}, None),
    ]


def test_jsonl_parts_split_by_bytes_keep_line_numbers(tmp_path):
    lines = [json.dumps({"i": i, "pad": "y" * (i * 13 % 50)}) for i in range(200)]
    lines[57] = '{"broken'
    lines[90] = ""
    (tmp_path / "a.jsonl").write_text("\n".join(lines) + "\n")
    src, reader = SourceRoot(tmp_path), get_reader("jsonl")
    whole = [(i.locator, i.data, i.error) for i in reader.read_file(src, "a.jsonl")]
    parts = reader.parts(src, "a.jsonl", target_bytes=500)
    assert len(parts) > 5
    split = [(i.locator, i.data, i.error) for p in parts for i in reader.read(src, p)]
    assert split == whole and len(whole) == 199  # the blank line is skipped
    assert whole[57][0] == "line 58" and whole[57][1] is None and "malformed JSON" in whole[57][2]
    assert whole[-1][0] == "line 200" and whole[-1][1]["i"] == 199


# --- tables, XML, pickles, archives ---------------------------------------------------------


def test_csv_rows_and_header(tmp_path):
    (tmp_path / "t.csv").write_text('video,question,answer\n1,"a, quoted ""q""",0\n2,short\n\n3,q3,1\n')
    got = items("csv", SourceRoot(tmp_path), "t.csv", columns=["video", "answer"])
    assert got[0] == ("row 2", {"video": "1", "question": 'a, quoted "q"', "answer": "0"}, None)
    assert got[1][0] == "row 3" and "2 cells, expected 3" in got[1][2]
    assert got[2] == ("row 5", {"video": "3", "question": "q3", "answer": "1"}, None)
    with pytest.raises(AnnotationFileError, match=r"lacks column\(s\) \['qid'\]"):
        items("csv", SourceRoot(tmp_path), "t.csv", columns=["qid"])


def test_parquet_by_row_group(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"id": str(i), "image": {"bytes": bytes([i]), "path": f"{i}.jpg"}} for i in range(5)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "p.parquet", row_group_size=2)
    src, reader = SourceRoot(tmp_path), get_reader("parquet", blobs="inline")
    parts = reader.parts(src, "p.parquet")
    assert len(parts) == 3
    got = [(i.locator, i.data) for p in parts for i in reader.read(src, p)]
    assert got[4] == ("row 4", rows[4])
    ref = next(get_reader("parquet").read(src, parts[2])).data  # by default, bytes stay in the file
    assert ref["image"]["path"] == "4.jpg" and "$blob" in ref["image"]["bytes"]


def test_xml_is_parsed_safely(tmp_path):
    (tmp_path / "1.xml").write_text(
        "<annotation><size><width>500</width><height>375</height></size>"
        "<object><name>1</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object>"
        "<object><name>2</name><nobndbox>1</nobndbox></object></annotation>"
    )
    [(loc, data, err)] = items("xml", SourceRoot(tmp_path), "1.xml")
    assert data["size"] == {"width": "500", "height": "375"} and len(data["object"]) == 2
    assert data["object"][0]["bndbox"]["xmin"] == "1" and data["_stem"] == "1"
    (tmp_path / "bomb.xml").write_text(
        '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><l>&b;</l>'
    )
    [(loc, data, err)] = items("xml", SourceRoot(tmp_path), "bomb.xml")
    assert data is None and "unsafe XML" in err


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_safe_pickle_reads_data_and_refuses_classes():
    refs = [{"ref_id": 1, "sentences": [{"raw": "the man on the left", "sent_id": 7}], "bbox": [1.5, 2, 3, 4]}]
    assert loads_data(pickle.dumps(refs, protocol=2)) == refs
    py2_str = b"\x80\x02]q\x00U\x05caf\xe9 q\x01a."  # a Python 2 cPickle list holding the byte string 'caf\xe9 '
    assert loads_data(py2_str) == ["café "]
    with pytest.raises(UnsafePickleError, match="names posix.system|names os.system|names nt.system"):
        loads_data(pickle.dumps(Evil()))
    with pytest.raises(UnsafePickleError, match="collections.OrderedDict"):
        loads_data(pickle.dumps(__import__("collections").OrderedDict(a=1)))


def test_archive_members_in_place(tmp_path):
    with zipfile.ZipFile(tmp_path / "imgs.zip", "w") as zf:
        zf.writestr("outer/MagicBrush/images/1.jpg", b"one")
        zf.writestr("../evil.jpg", b"no")
    (tmp_path / "parts.txt").write_text("imgs.zip\n")
    archives = ArchiveSet.from_list_file(SourceRoot(tmp_path), "parts.txt")
    assert archives.read("MagicBrush/images/1.jpg") == b"one"  # found without the extra outer folder
    assert archives.read("../evil.jpg") == b"no"  # a name, never a path: nothing is extracted
    with pytest.raises(SourceError) as err:
        archives.read("MagicBrush/images/2.jpg")
    assert err.value.reason == "missing_media"
    with tarfile.open(tmp_path / "chunk_0.tar.gz", "w:gz") as tf:
        for name, data in (("v1/001.jpg", b"a"), ("v1/002.jpg", b"b")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    streamed = list(iter_tar_members(SourceRoot(tmp_path), "chunk_0.tar.gz"))
    assert streamed == [("v1/001.jpg", b"a"), ("v1/002.jpg", b"b")]


# --- field expressions and the template library ------------------------------------------------


def test_field_expressions():
    rec = {"identifier": "dev-850-0-0", "a": {"b": [1, 2, 3]}, "answer": "2", "path": "x/y/z.mp4"}
    assert render("{identifier|drop_last}-img0.png", rec) == "dev-850-0-img0.png"
    assert render("{a.b[-1]} {answer|letter} {path|last|strip_ext} {{x}}", rec) == "3 C z {x}"
    assert evaluate("a.b", rec) == [1, 2, 3]
    assert fields_of("{identifier|drop_last}/{a.b[0]} {_split}") == {"identifier", "a", "_split"}
    with pytest.raises(SourceError, match="missing field 'directory'"):
        render("images/{directory}/x.png", rec, "line 3")
    with pytest.raises(TemplateError, match="unknown filter 'nope'"):
        render("{answer|nope}", rec)
    table = {"_maps": {"vidor": {"42": "0001/42"}}}
    assert render("{v|map:vidor}.mp4", {"v": 42, **table}) == "0001/42.mp4"
    with pytest.raises(SourceError) as err:
        render("{v|map:vidor}", {"v": 7, **table})
    assert err.value.reason == "missing_media"


def test_template_choice_is_by_key_and_recorded():
    a = choose("@st/tvg_span_phrases", "vidstg-train-3-c0", "phrase")
    assert a == choose("@st/tvg_span_phrases", "vidstg-train-3-c0", "phrase")  # deterministic
    assert a[1].startswith("st/tvg_span_phrases#")
    picked = {choose("@st/tvg_span_phrases", f"k{i}", "phrase")[0] for i in range(200)}
    assert len(picked) == 8  # every phrase gets used
    assert choose("plain text {x}", "k", "human") == ("plain text {x}", "")
    with pytest.raises(TemplateError, match="unknown template '@st/nope'"):
        choose("@st/nope", "k", "human")


def test_every_item_can_resume_its_file(tmp_path):
    """A work unit starts reading at its first record: from any item's resume part the reader
    gives exactly the rest of the file, with the same locators (multi-byte text, quoted newlines
    and row groups included)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"id": i, "text": f"é{'ü' * (i % 5)}\nline two" if i % 3 else "plain", "n": i * 1.5} for i in range(13)]
    (tmp_path / "a.json").write_text(json.dumps(rows, ensure_ascii=False, indent=2))
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    with open(tmp_path / "a.csv", "w", newline="") as fh:
        import csv

        w = csv.writer(fh)
        w.writerow(["id", "text", "n"])
        w.writerows([[r["id"], r["text"], r["n"]] for r in rows])
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet", row_group_size=4)
    src = SourceRoot(tmp_path)
    for reader_name, rel in (("json", "a.json"), ("jsonl", "a.jsonl"), ("csv", "a.csv"), ("parquet", "a.parquet")):
        reader = get_reader(reader_name)
        parts = reader.parts(src, rel)
        whole = [(p, i) for p in parts for i in reader.read(src, p)]
        assert len(whole) == 13, reader_name
        for k, (part, item) in enumerate(whole):
            resumed = list(reader.read(src, item.resume_part(part)))
            tail = [i for _, i in whole[k:] if _ is part]
            assert [(i.locator, i.data) for i in resumed] == [(i.locator, i.data) for i in tail], (reader_name, k)
