"""Issue #10 end to end: the bad-input corpus (``test_hostile_corpus.py``) built on a real local Ray
next to the same corpus without the planted records.

Asserted: every bad record is quarantined with its true reason and nothing else is; counts
reconcile; no byte from outside the source roots reaches a shard or an export; no file outside
``--out`` is written; files already in ``--out`` that the build did not write survive (and a
build without ``--overwrite`` refuses to start next to them).
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from m4_pipeline.cli import main
from m4_pipeline.executor import run_build
from m4_pipeline.recipe import load_recipe
from tests.test_hostile_corpus import MARKER_RGB, MARKER_TEXT, recipe_text, write_hostile_corpus

pytestmark = pytest.mark.slow

FOREIGN = {
    "precious_backup.tar": b"not ours, never delete",
    "notes.txt": b"my notes",
    "keep/inside.txt": b"a folder of mine",
}


def snapshot(root: Path, skip: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` but ``skip``: (size, mtime_ns)."""
    out = {}
    for dirpath, _dirnames, filenames in os.walk(root):
        if Path(dirpath) == skip or skip in Path(dirpath).parents:
            continue
        for name in filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def other_shard(path: Path) -> None:
    """A shard of another recipe: a real tar that this build must leave alone."""
    with tarfile.open(path, "w") as tf:
        data = b'{"other": true}'
        info = tarfile.TarInfo("other-0.json")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def built(ray_session, tmp_path_factory):
    clean_root = tmp_path_factory.mktemp("clean")
    write_hostile_corpus(clean_root, plant=False)
    (clean_root / "recipe.yaml").write_text(recipe_text())
    clean = run_build(load_recipe(clean_root / "recipe.yaml"), clean_root / "sources", clean_root / "out",
                      progress=False)  # fmt: skip

    root = tmp_path_factory.mktemp("hostile")
    cases = write_hostile_corpus(root)
    (root / "recipe.yaml").write_text(recipe_text())
    out = root / "out"
    for rel, data in FOREIGN.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    other_shard(out / "other-000000.tar")
    foreign = {p: (out / p).read_bytes() for p in [*FOREIGN, "other-000000.tar"]}
    before = snapshot(root, out)
    argv = ["build", str(root / "recipe.yaml"), "--sources", str(root / "sources"), "--out", str(out), "-q"]
    refused = main(argv)
    refused_listing = sorted(p.name for p in out.iterdir())
    rc = main([*argv, "--overwrite"])
    after = snapshot(root, out)
    return {"root": root, "out": out, "cases": cases, "clean": clean, "clean_out": clean_root / "out", "rc": rc,
            "refused": refused, "refused_listing": refused_listing, "foreign": foreign, "before": before,
            "after": after, "manifest": json.loads((out / "manifest.json").read_text())}  # fmt: skip


def quarantine(out: Path) -> dict[tuple, dict]:
    rows = [json.loads(line) for line in (out / "quarantine.jsonl").read_text().splitlines()]
    return {(r["source"], r["source_file"], r["locator"]): r for r in rows}


def shard_members(out: Path):
    import webdataset as wds

    for p in sorted(out.glob("hostile-*.tar")):
        yield from wds.WebDataset(str(p), shardshuffle=False)


def test_the_build_refuses_foreign_files_without_overwrite_then_keeps_them(built):
    assert built["refused"] == 2 and built["rc"] == 0
    assert built["refused_listing"] == ["keep", "notes.txt", "other-000000.tar", "precious_backup.tar"]
    for rel, data in built["foreign"].items():
        assert (built["out"] / rel).read_bytes() == data, f"{rel} was changed"


def test_every_bad_record_is_quarantined_with_its_true_reason(built):
    q, clean_q = quarantine(built["out"]), quarantine(built["clean_out"])
    planted = {(c.source, c.source_file, c.locator): c for c in built["cases"]}
    wrong = []
    for key, c in planted.items():
        got = q.get(key, {}).get("reason", "written")
        if got != c.reason:
            wrong.append(f"{c.what} ({key}): want {c.reason}, got {got} {q.get(key, {}).get('detail', '')[:120]}")
    assert not wrong, "\n".join(wrong)
    # nothing else: the miniature's own defects are quarantined as in the clean build, no good record is lost
    expected = {k: r["reason"] for k, r in clean_q.items()}
    expected.update({k: c.reason for k, c in planted.items() if c.reason != "written"})
    assert {k: r["reason"] for k, r in q.items()} == expected
    for key, c in planted.items():  # a refused path is named in the detail
        if c.reason == "unsafe_path":
            assert "outside" in q[key]["detail"] or "link" in q[key]["detail"], q[key]


def test_counts_reconcile(built):
    m, clean = built["manifest"], built["clean"]
    planted_by_source: dict[str, int] = {}
    written_extra: dict[str, int] = {}
    for c in built["cases"]:
        planted_by_source[c.source] = planted_by_source.get(c.source, 0) + 1
        written_extra[c.source] = written_extra.get(c.source, 0) + (c.reason == "written")
    for name, s in m["sources"].items():
        assert s["read"] == s["written"] + sum(s["quarantined"].values()) + s["duplicates"] + s["decontaminated"]
        assert s["read"] == clean["sources"][name]["read"] + planted_by_source.get(name, 0), name
        if name != "llava_links":  # its clean copy is all duplicates of llava_mix
            assert s["written"] == clean["sources"][name]["written"] + written_extra.get(name, 0), name
    t = m["totals"]
    assert t["quarantined"] == len(quarantine(built["out"]))
    index = json.loads((built["out"] / "index.json").read_text())
    assert sum(s["samples"] for s in index["shards"]) == t["written"] == sum(1 for _ in shard_members(built["out"]))


def no_marker_image(data: bytes, what: str) -> None:
    img = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).reshape(-1, 3).astype(int)
    near = np.abs(img - np.array(MARKER_RGB)).sum(axis=1) < 40
    assert near.mean() < 0.5, f"{what}: the marker colour from outside the source root"


def test_no_byte_from_outside_the_source_roots_in_shards_or_exports(built, tmp_path):
    from m4_pipeline.export import export_llava_json, export_parquet, export_st_align

    out = built["out"]
    for item in shard_members(out):
        for name, value in item.items():
            if isinstance(value, bytes):
                assert MARKER_TEXT.encode() not in value
                if name.endswith(("jpg", "png")):
                    no_marker_image(value, f"{item['__key__']}.{name}")
    exports = tmp_path / "exports"
    shards = [out / p["name"] for p in json.loads((out / "index.json").read_text())["shards"]]
    assert shards
    staged = tmp_path / "shards"
    staged.mkdir()
    for p in shards:
        (staged / p.name).symlink_to(p)
    export_llava_json(staged, exports / "llava")
    export_st_align(staged, exports / "st")
    export_parquet(staged, exports / "pq")
    for p in exports.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            assert MARKER_TEXT.encode() not in data, p
            if p.suffix in (".jpg", ".png"):
                no_marker_image(data, str(p))


def test_no_file_outside_out_is_written(built):
    assert built["before"] == built["after"]


def test_validate_reports_the_foreign_files_and_nothing_else(built, capsys):
    assert main(["validate", str(built["out"]), "-q"]) == 1
    problems = capsys.readouterr().out.splitlines()[:-1]
    assert sorted(problems) == [
        "other-000000.tar: not in index.json",
        "other-000000.tar: other-0: missing field 'conversations'",
        "precious_backup.tar: not a readable tar shard (truncated header)",
        "precious_backup.tar: not in index.json",
    ]


def test_a_second_build_replaces_only_its_own_outputs(built):
    out = built["out"]
    first = {p.name: p.read_bytes() for p in out.glob("hostile-*.tar")}
    (out / "index.json").write_text((out / "index.json").read_text())  # untouched content, new mtime
    argv = ["build", str(built["root"] / "recipe.yaml"), "--sources", str(built["root"] / "sources"), "--out",
            str(out), "-q", "--overwrite"]  # fmt: skip
    assert main(argv) == 0
    assert {p.name: p.read_bytes() for p in out.glob("hostile-*.tar")} == first
    for rel, data in built["foreign"].items():
        assert (out / rel).read_bytes() == data
    assert not (out / "_work").exists() and not (out / ".m4-build.lock").exists()


def test_the_kit_fixes_hold_on_the_corpus(built):
    """Issue #10's items the adapter kit fixed, checked on the built corpus: VidSTG entries sharing
    one video and segment are all kept (keyed by entry position) and a ground truth ending at
    ``end_fid == frame_count`` is valid; M4 ``metadata.split`` is the source split; ScanQA's
    render intrinsics are scaled to the rendered size (96x72 from ScanNet's 1296x968)."""
    assert built["clean"]["sources"]["vidstg"]["quarantined"] == {}
    records = {item["__key__"]: json.loads(item["json"]) for item in shard_members(built["out"])}
    assert {f"vidstg-train-{i}-c0" for i in range(3)} <= set(records)
    splits = {(k.split("-")[0], r["metadata"]["split"]) for k, r in records.items() if "metadata" in r}
    assert {("nlvr2", "dev"), ("nlvr2", "train"), ("nextqa", "val"), ("nextqa", "train")} <= splits
    view = next(r for k, r in records.items() if k.startswith("scanqa-"))["provenance"]["media"][0]
    assert view["size"] == [96, 72] and view["intrinsics"][0][0] == pytest.approx(1170.19 * 96 / 1296, rel=1e-3)


def test_index_json_is_written_last(built):
    """index.json names what a build finished: nothing in the folder is newer than it."""
    out = built["clean_out"]
    index = (out / "index.json").stat().st_mtime_ns
    others = [p for p in out.rglob("*") if p.is_file() and p.name != "index.json"]
    assert others and [p.name for p in others if p.stat().st_mtime_ns > index] == []
