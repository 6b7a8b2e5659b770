import copy

from m4_pipeline.formats import from_record
from m4_pipeline.sample import Media
from m4_pipeline.validate import validate_sample
from tests.test_formats import M4_RELEASED, ST_RELEASED

IMAGES = [Media("image", 0, b"a"), Media("image", 1, b"b")]
FRAMES = [Media("frame", 0, b"", frame_index=5 + i, timestamp=0.0) for i in range(100)]


def problems(record, family="m4", media=None, with_media=False):
    sample = from_record(record, family, key="s1", media=media)
    return [str(p) for p in validate_sample(sample, with_media=with_media or bool(media))]


def test_valid_records_have_no_problems():
    assert problems(M4_RELEASED) == []
    assert problems(M4_RELEASED, media=IMAGES) == []
    assert problems(ST_RELEASED, "st", FRAMES) == []


def test_a_sample_carries_the_media_its_placeholders_and_record_promise():
    # issue #10: two <image> and two paths but no media passed, as did an ST <video> with no frames
    (p,) = problems(M4_RELEASED, with_media=True)
    assert p == "s1: media: 2 placeholder(s) in the conversation but 0 media slot(s)"
    out = problems(ST_RELEASED, "st", with_media=True)
    assert "s1: media: 1 placeholder(s) in the conversation but 0 media slot(s)" in out
    assert "s1: media: an ST-Align video needs exactly 100 frames, got 0" in out
    assert problems(M4_RELEASED, media=IMAGES[:1]) == [
        "s1: media: 2 placeholder(s) in the conversation but 1 media slot(s)"
    ]


def test_placeholders_belong_in_human_turns():
    rec = copy.deepcopy(M4_RELEASED)
    rec["conversations"][0]["value"] = "Source Image: <image>\nWhat changed?"
    rec["conversations"][1]["value"] = "<image> A hat was added."  # count and paths agree: only the role is wrong
    rec["image"] = rec["image"][:1] + ["MagicBrush/images/10956.jpg"]
    out = problems(rec, media=IMAGES)
    assert out == ["s1: conversations[1].value: <image> in a gpt turn: placeholders belong in human turns"]
    st = copy.deepcopy(ST_RELEASED)
    st["conversations"][0]["value"] = "When does the box move?"
    st["conversations"][1]["value"] = "<video> During {<TEMP-OUTPUT><TEMP-OUTPUT>}."
    assert "s1: conversations[1].value: <video> in a gpt turn: placeholders belong in human turns" in problems(
        st, "st", FRAMES
    )


def test_placeholder_count_must_match_paths_magicbrush_defect():
    rec = copy.deepcopy(M4_RELEASED)
    rec["image"] += ["MagicBrush/images/x.jpg", "MagicBrush/images/y.jpg"]  # 2 placeholders, 4 paths (#107)
    (p,) = problems(rec)
    assert p.startswith("s1: image: 2 placeholder(s)") and "4 path(s)" in p


def test_placeholders_must_match_media_slots():
    media = [Media("image", 0, b"x")]
    assert any("media slot" in p for p in problems(M4_RELEASED, media=media))


def test_roles_swapped_twitter_post_defect_and_empty_turn():
    rec = copy.deepcopy(M4_RELEASED)
    rec["conversations"][0]["from"], rec["conversations"][1]["from"] = "gpt", "human"
    out = problems(rec)
    assert any("conversations[0].from: the first turn must be human" in p for p in out)
    rec = copy.deepcopy(M4_RELEASED)
    rec["conversations"][1]["value"] = "  "
    assert any("conversations[1].value: empty turn" in p for p in problems(rec))


def test_question_type_vocabulary():
    rec = copy.deepcopy(M4_RELEASED)
    rec["metadata"]["question_type"] = "yes-no"
    assert any("metadata.question_type" in p for p in problems(rec))


def test_st_token_counts_values_and_order():
    rec = copy.deepcopy(ST_RELEASED)
    rec["variables"]["temporal_output_locations"] = [0.1]
    assert any(
        "variables.temporal_output_locations: 2 <TEMP-OUTPUT> token(s) but 1 value(s)" in p for p in problems(rec, "st")
    )
    rec["variables"]["temporal_output_locations"] = [0.1, 1.5]
    assert any("must be a number in [0, 1]" in p for p in problems(rec, "st"))
    rec["variables"]["temporal_output_locations"] = [0.6, 0.2]
    assert any("span starts after it ends" in p for p in problems(rec, "st"))


def test_st_boxes_ordered_and_io_side():
    rec = copy.deepcopy(ST_RELEASED)
    rec["conversations"][1]["value"] = "Box: [<WIDTH-OUTPUT><HEIGHT-OUTPUT><WIDTH-OUTPUT><HEIGHT-OUTPUT>]"
    rec["variables"]["temporal_output_locations"] = []
    rec["variables"]["spatial_width_output_locations"] = [0.8, 0.2]
    rec["variables"]["spatial_height_output_locations"] = [0.1, 0.3]
    assert any("x1 > x2" in p for p in problems(rec, "st"))
    rec["conversations"][0]["value"] = "<video> from <TEMP-OUTPUT>"
    assert any("<TEMP-OUTPUT> in a human turn" in p for p in problems(rec, "st"))


def test_st_video_needs_exactly_100_frames_and_no_sharegpt_paths():
    frames = [Media("frame", 0, b"", frame_index=10, timestamp=0.0) for _ in range(10)]
    assert any("exactly 100 frames, got 10" in p for p in problems(ST_RELEASED, "st", frames))
    rec = copy.deepcopy(ST_RELEASED)
    rec["video"] = "shareVideoGPTV/frames/all_frames/v1"
    assert any("shareVideoGPTV" in p for p in problems(rec, "st"))


def test_st_needs_a_visual_placeholder_and_variables():
    rec = copy.deepcopy(ST_RELEASED)
    del rec["video"]
    rec["conversations"][0]["value"] = "text only"
    del rec["variables"]
    out = problems(rec, "st")
    assert any("must contain <image> or <video>" in p for p in out)
    assert any(p.startswith("s1: variables: missing") for p in out)
