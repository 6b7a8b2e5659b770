"""Kit extensions for embedded media: parquet blob references, declarative embedded images,
miniature image columns."""

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from m4_pipeline.adapters import declare, get_adapter
from m4_pipeline.errors import MediaError, SourceError
from m4_pipeline.paths import SourceRoot
from m4_pipeline.readers import ParquetBlobs, get_reader, is_blob


def _png(colour) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 6), colour).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def table(tmp_path):
    struct = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    schema = pa.schema([("id", pa.string()), ("img", struct), ("more", pa.list_(struct)), ("raw", pa.binary())])
    rows = [{"id": f"r{i}", "img": {"bytes": _png((i * 40, 0, 0)), "path": f"a/{i}.png"},
             "more": [{"bytes": None, "path": f"m/{i}.jpg"}, {"bytes": _png((0, i * 40, 0)), "path": None}],
             "raw": bytes([i]) * 5} for i in range(5)]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp_path / "t.parquet", row_group_size=2)
    return tmp_path, rows


def test_parquet_rows_carry_blob_references_that_read_back(table):
    root, rows = table
    src = SourceRoot(root)
    items = list(get_reader("parquet").read_file(src, "t.parquet"))
    assert [i.locator for i in items] == [f"row {n}" for n in range(5)]
    json.dumps([i.data for i in items])  # plain JSON on the way to the workers
    blobs = ParquetBlobs(src)
    for n, item in enumerate(items):
        assert is_blob(item.data["img"]["bytes"]) and item.data["img"]["path"] == f"a/{n}.png"
        assert item.data["more"][0] == {"bytes": None, "path": f"m/{n}.jpg"}
        assert blobs.read(item.data["img"]["bytes"]) == rows[n]["img"]["bytes"]
        assert blobs.read(item.data["more"][1]["bytes"]) == rows[n]["more"][1]["bytes"]
        assert blobs.read(item.data["raw"]) == rows[n]["raw"] and item.data["raw"]["size"] == 5
    inline = list(get_reader("parquet", blobs="inline").read_file(src, "t.parquet"))
    assert inline[3].data["raw"] == rows[3]["raw"]
    with pytest.raises(ValueError):
        get_reader("parquet", blobs="base64")


def test_a_blob_reference_that_points_nowhere_is_missing_media(table):
    root, _ = table
    blobs = ParquetBlobs(SourceRoot(root))
    with pytest.raises(MediaError) as err:
        blobs.read({"$blob": {"file": "t.parquet", "row": 9, "column": "img", "at": ["bytes"]}})
    assert err.value.reason == "missing_media"
    with pytest.raises(MediaError):
        blobs.read({"$blob": {"file": "t.parquet", "row": 1, "column": "img", "at": ["path"]}})  # text, not bytes


SPEC = {
    "name": "kit_embedded_demo", "reader": "parquet", "files": ["{split}.parquet"], "id": "{id}",
    "images": ["{img}", "{more[1]}"], "image_prefix": "demo", "human": "<image><image>\nWhat differs?",
    "gpt": "{id}", "image_names": ["x/{id}_{_slot}.jpg"],
    "miniature": {"image_columns": ["img", "more"], "files": {"train.parquet": [
        {"id": "a", "img": "a.png", "more": ["m0", None]}, {"id": "b", "img": None, "more": [None, None]}]}},
}  # fmt: skip


def test_declarative_reads_embedded_images_and_names_them(tmp_path):
    cls = declare(SPEC, "test")
    try:
        cls.write_miniature(tmp_path)
        schema = pq.read_schema(tmp_path / "train.parquet")
        assert schema.field("img").type == pa.struct([("bytes", pa.binary()), ("path", pa.string())])
        adapter = cls(tmp_path)
        samples = [adapter.build(r) for r in adapter.list_records()]
        assert samples[0].record["image"] == ["demo/x/a_0.jpg", "demo/x/a_1.jpg"]
        assert [m.slot for m in samples[1].media] == [0, 1] and all(m.data for m in samples[1].media)
        nameless = declare({**SPEC, "name": "kit_embedded_nameless", "image_names": [], "images": ["{img}"],
                            "human": "<image>\nWhat is it?"}, "test")  # fmt: skip
        adapter = nameless(tmp_path)
        first, second = list(adapter.list_records())
        assert adapter.build(first).record["image"][0] == "demo/a.png"  # the struct's own path
        with pytest.raises(SourceError, match="declare image_names"):
            adapter.build(second)  # embedded, no path, no image_names
    finally:
        from m4_pipeline.adapters.base import REGISTRY

        REGISTRY.pop("kit_embedded_demo", None)
        REGISTRY.pop("kit_embedded_nameless", None)


def test_declared_parquet_sources_keep_records_small(miniatures):
    adapter = get_adapter("raven")(miniatures / "raven")
    for record in adapter.list_records():
        assert len(record.to_json()) < 8000  # 16 images per row travel as references
