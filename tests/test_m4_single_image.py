"""LLaVA-NeXT-Data in its two published forms: parquet with embedded images, raw JSON + image tars."""

from m4_pipeline.adapters import get_adapter
from m4_pipeline.validate import validate_sample


def _built(root, **params):
    cls = get_adapter("llava_next")
    adapter = cls(root, cls.Params(**params))
    return {r.source_id: adapter.build(r) for r in adapter.list_records()}


def test_both_forms_give_the_same_multi_patch_samples(miniatures):
    root = miniatures / "llava_next"
    parquet = _built(root)
    raw = _built(root, form="raw")
    streamed = _built(root, form="raw", images_from="archives")
    assert set(parquet) == set(raw) == set(streamed) == {"000000033471", "000000033471-dup1", "sa_1002", "chartqa_88",
                                                         "ai2d_5"}  # fmt: skip
    for sid, sample in parquet.items():
        assert validate_sample(sample) == [] and {m.kind for m in sample.media} == {"patch"}
        assert (
            [m.data for m in sample.media] == [m.data for m in raw[sid].media] == [m.data for m in streamed[sid].media]
        )
        base = [m for m in sample.media if m.grid is None]
        assert len(base) == 1 and sample.conversations[0].value.count("<image>") == 1
    assert parquet["chartqa_88"].record["image"] == ["chartqa/88.png"]  # data_source / the struct's path
    assert raw["chartqa_88"].record["image"] == ["chartqa/train/png/88.png"]
    assert parquet["chartqa_88"].media[0].ops[-1] == "anyres:1x3"  # a wide chart: a 1x3 grid
    assert parquet["000000033471"].record["sample_id"] == "000000033471"


def test_archive_listing_follows_archive_order(miniatures):
    cls = get_adapter("llava_next")
    adapter = cls(miniatures / "llava_next", cls.Params(form="raw", images_from="archives"))
    orders = [r.data["_archive"]["order"] for r in adapter.list_records()]
    assert orders == sorted(orders)
