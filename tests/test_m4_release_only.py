"""The sets taken from the release: filtered by metadata.dataset; twitter_post's swapped roles
quarantined by default or repaired on request, with the repair recorded."""

import pytest

from m4_pipeline.adapters import get_adapter
from m4_pipeline.errors import SourceError
from m4_pipeline.formats import from_record
from m4_pipeline.recipe import RecipeError, build_params
from m4_pipeline.validate import validate_sample


def _release(miniatures, **params):
    cls = get_adapter("m4_release")
    return cls(miniatures / "m4_release", cls.Params(**params))


def test_datasets_filter_lists_only_those_sets(miniatures):
    adapter = _release(miniatures, datasets=["MMChat", "HQ-Edit-Diff"], video_annotations="")
    records = list(adapter.list_records())
    assert {r.data["metadata"]["dataset"] for r in records} == {"MMChat", "HQ-Edit-Diff"} and len(records) == 4
    mmchat = adapter.build(next(r for r in records if r.source_id == "MMChat-20"))
    assert [t.role for t in mmchat.conversations] == ["human", "gpt", "human", "gpt"] and len(mmchat.media) == 2
    assert validate_sample(mmchat) == []


def test_twitter_post_is_quarantined_by_default_and_repaired_on_request(miniatures):
    default = _release(miniatures, datasets=["twitter_post"])
    (record,) = list(default.list_records())
    with pytest.raises(SourceError) as err:
        default.build(record)
    assert err.value.reason == "validation" and "first turn must be human" in str(err.value)
    repaired = _release(miniatures, datasets=["twitter_post"], role_repair="swap")
    sample = repaired.build(record)
    assert [t.role for t in sample.conversations] == ["human", "gpt"]
    assert sample.conversations[0].value.startswith("<image>") and sample.provenance.ops == ["roles_swapped:order"]
    other = _release(miniatures, datasets=["twitter_post"], role_repair="swap", swap_roles_in=["MMChat"])
    with pytest.raises(SourceError):
        other.build(record)  # the repair applies to the datasets named, no others


def test_swapped_labels_are_swapped_back(miniatures):
    from m4_pipeline.adapters.m4_release import _swap_roles

    sample = from_record({"sample_id": 1, "conversations": [{"from": "gpt", "value": "<image>\nWrite a tweet."},
                                                            {"from": "human", "value": "Shapes everywhere!"}],
                          "image": ["twitter_post/images/1.jpg"], "choice_list": None,
                          "metadata": {"dataset": "twitter_post"}}, "m4")  # fmt: skip
    _swap_roles(sample)
    assert [(t.role, t.value[:7]) for t in sample.conversations] == [("human", "<image>"), ("gpt", "Shapes ")]
    assert sample.provenance.ops == ["roles_swapped:labels"]
    mixed = from_record({"sample_id": 2, "conversations": [{"from": "gpt", "value": "<image>"},
                                                           {"from": "human", "value": "<image>"}]}, "m4")  # fmt: skip
    _swap_roles(mixed)
    assert mixed.conversations[0].role == "gpt" and mixed.provenance is None  # not repairable: left as it was


def test_role_repair_is_checked():
    with pytest.raises(RecipeError):
        build_params(get_adapter("m4_release").Params, {"role_repair": "fix"}, "recipe")


def test_dreamsim_is_read_from_the_split_archive_in_place(miniatures):
    root = miniatures / "m4_release"
    assert (root / "dreamsim_split.z01").is_file() and (root / "dreamsim_split.zip").is_file()
    adapter = _release(miniatures, datasets=["DreamSim"])
    (record,) = list(adapter.list_records())
    sample = adapter.build(record)
    assert len(sample.media) == 3 and all(m.data[:2] == b"\xff\xd8" for m in sample.media)
