import json

import pytest

from m4_pipeline.formats import FormatError, from_record, from_shard_json, to_record, to_shard_json
from m4_pipeline.sample import Media, Provenance, make_key

M4_RELEASED = {
    "sample_id": 4756,
    "conversations": [
        {"from": "human", "value": "Source Image: <image>\nTarget Image: <image>\nWhat changed?"},
        {"from": "gpt", "value": "A hat was added."},
    ],
    "image": ["MagicBrush/images/10955.jpg", "MagicBrush/images/10956.jpg"],
    "choice_list": None,
    "metadata": {
        "dataset": "MagicBrush",
        "split": "train",
        "num_sample": 6700,
        "task_instruction": "Describe the edit.",
        "question_type": "open-ended",
    },
}
ST_RELEASED = {
    "id": "vid-1",
    "video": "vidor/video/0000/2401075277.mp4",
    "meta": {"split": [5, 149]},
    "conversations": [
        {"from": "human", "value": "<video>\nWhen does the box move?"},
        {"from": "gpt", "value": "During {<TEMP-OUTPUT><TEMP-OUTPUT>}."},
    ],
    "variables": {
        "temporal_input_locations": [],
        "temporal_output_locations": [0.1, 0.5],
        "spatial_height_input_locations": [],
        "spatial_height_output_locations": [],
        "spatial_width_input_locations": [],
        "spatial_width_output_locations": [],
    },
}


@pytest.mark.parametrize("record,family", [(M4_RELEASED, "m4"), (ST_RELEASED, "st")])
def test_released_records_round_trip_exactly(record, family):
    sample = from_record(json.loads(json.dumps(record)), family, key="k")
    out = to_record(sample)
    assert out == record
    assert json.dumps(out) == json.dumps(record)  # key order too


def test_unknown_fields_and_key_order_survive():
    record = {
        "conversations": [
            {"from": "human", "value": "<image> hi", "weight": 0.5},
            {"from": "gpt", "value": "yo"},
        ],
        "image": ["a.jpg"],
        "sample_id": 3,
        "extra_field": {"x": 1},
    }
    out = to_record(from_record(record, "m4"))
    assert json.dumps(out) == json.dumps(record)


def test_shard_json_round_trip_keeps_media_and_provenance():
    sample = from_record(M4_RELEASED, "m4", key="magicbrush-4756")
    sample.media = [Media("image", 0, b"a", "jpg", size=[4, 4]), Media("image", 1, b"b", "png", size=[4, 4])]
    sample.provenance = Provenance("magicbrush", "ann.json", "index 0", "demo", "1", "x")
    shard_json = json.loads(json.dumps(to_shard_json(sample)))
    assert shard_json["provenance"]["media"][1] == {"kind": "image", "slot": 1, "ext": "png", "size": [4, 4]}
    back = from_shard_json(shard_json, "magicbrush-4756", [b"a", b"b"])
    assert to_record(back) == M4_RELEASED
    assert back.media == sample.media and back.provenance == sample.provenance


def test_malformed_records_raise_format_errors():
    with pytest.raises(FormatError, match="conversations"):
        from_record({"image": []}, "m4", key="x")
    with pytest.raises(FormatError, match=r"conversations\[0\]"):
        from_record({"conversations": [{"value": "no role"}]}, "m4", key="x")


def test_keys_are_deterministic_and_webdataset_safe():
    assert make_key("nlvr2", "dev-850-0-0") == "nlvr2-dev-850-0-0"
    weird = make_key("vg", "VG_100K_2/1.jpg")
    assert "." not in weird and "/" not in weird and weird == make_key("vg", "VG_100K_2/1.jpg")
    assert make_key("vg", "a/b") != make_key("vg", "a_b")
