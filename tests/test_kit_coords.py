"""The ST coordinate kit, pinned on values worked out by hand from LLaVA-ST's published rules
(``(frame - s0) / (s1 - s0)`` rounded to 3 decimals; boxes ``[x, y, x+w, y+h] / (W, H, W, H)``)
and on rows shaped like the real annotation files."""

import math

import pytest

from m4_pipeline.coords import (
    Box,
    FrameRange,
    Ops,
    Span,
    Time,
    Tube,
    Variables,
    frame_range,
    lape_bin,
    norm_box,
    seconds_range,
    seconds_to_frame,
)
from m4_pipeline.errors import SourceError
from m4_pipeline.templates import render


def test_time_within_an_inclusive_split():
    split = FrameRange(10, 109)  # LLaVA-ST's meta.split [10, 109]: 100 frames, both ends in
    assert split.time(10) == 0.0 and split.time(109) == 1.0
    assert split.time(40) == 0.303  # 30 / 99 = 0.30303...
    with pytest.raises(SourceError, match="outside the frame range"):
        split.time(110)


def test_vidstg_exclusive_ends_at_the_frame_count():
    # a VidSTG entry: frame_count 300, used_segment {0, 300}, temporal_gt {120, 300} (VidOR: exclusive)
    seg = frame_range(0, 300, end_inclusive=False, num_frames=300)
    gt = frame_range(120, 300, end_inclusive=False, num_frames=300)
    assert seg.as_list() == [0, 299] and gt.as_list() == [120, 299]
    assert seg.time(gt.start) == 0.401 and seg.time(gt.end) == 1.0  # 120 / 299 = 0.40134; the end reaches 1.0
    with pytest.raises(SourceError, match="outside the video"):
        frame_range(-50, 100, end_inclusive=False, num_frames=300)
    with pytest.raises(SourceError, match="outside the video"):
        frame_range(0, 10000, end_inclusive=False, num_frames=300)
    with pytest.raises(SourceError, match="not a finite number"):
        frame_range(0, float("nan"), end_inclusive=False, num_frames=300)
    with pytest.raises(SourceError, match="integers"):
        frame_range(0, 12.5, end_inclusive=False, num_frames=300)


def test_seconds_to_frames_and_the_end_of_the_video():
    assert seconds_to_frame(12.5, 29.97, 900) == 375  # 12.5 * 29.97 = 374.625
    ops = Ops()
    assert seconds_to_frame(10.0, 30.0, 300, ops=ops) == 299  # "ends at 10 s" on a 10 s video: the last frame
    assert ops.items == ["time_at_video_end"]
    with pytest.raises(SourceError, match="past the video's end"):
        seconds_to_frame(10.1, 30.0, 300)
    with pytest.raises(SourceError, match="negative"):
        seconds_to_frame(-0.5, 30.0, 300)
    with pytest.raises(SourceError, match="not a finite"):
        seconds_to_frame(math.inf, 30.0, 300)
    with pytest.raises(SourceError, match="after it ends"):
        seconds_range(5.0, 4.0, 30.0, 300)


def test_refcoco_box_to_lape_values():
    # a COCO / RefCOCO annotation: bbox [x, y, w, h] = [103.93, 299.99, 134.22, 82.0] on a 640x427 image
    assert norm_box([103.93, 299.99, 134.22, 82.0], width=640, height=427) == (0.162, 0.703, 0.372, 0.895)
    assert norm_box([0, 0, 640, 427], width=640, height=427) == (0.0, 0.0, 1.0, 1.0)  # at the image edge
    ops = Ops()
    assert norm_box([0, 0, 641, 427], width=640, height=427, ops=ops) == (0.0, 0.0, 1.0, 1.0)
    assert ops.items == ["box_clipped_1px"]
    for bad, match in (([0, 0, 643, 427], "outside"), ([5, 5, 0, 10], "empty"), ([float("nan"), 0, 1, 1], "finite")):
        with pytest.raises(SourceError, match=match):
            norm_box(bad, width=640, height=427)


def test_flickr_one_based_box():
    # Flickr30k Entities: <xmin>1</xmin><ymin>1</ymin><xmax>500</xmax><ymax>375</ymax> on 500x375, 1-based
    box = {"xmin": 1, "ymin": 1, "xmax": 500, "ymax": 375}
    assert norm_box(box, width=500, height=375, fmt="xyxy", origin=1) == (0.0, 0.0, 0.998, 0.997)


def test_lape_bins():
    assert lape_bin(0.303) == 30 and lape_bin(1.0) == 99 and lape_bin(0.0) == 0


def test_templates_render_tokens_and_fill_variables_in_order():
    variables = Variables()
    values = {
        "phrase": "During",
        "_span": Span(0.25, 0.5),
        "tube": Tube(((0.25, Box(0.1, 0.2, 0.3, 0.4)), (0.5, Box(0.2, 0.2, 0.4, 0.4)))),
    }
    human = render("<video>\nWhat happens at {t}?", {"t": Time(0.1)}, variables=variables, role="human")
    gpt = render("{phrase} {_span}. Object bounding box: {tube}", values, variables=variables, role="gpt")
    assert human == "<video>\nWhat happens at <TEMP-INPUT>?"
    assert gpt == (
        "During {<TEMP-OUTPUT><TEMP-OUTPUT>}. Object bounding box: "
        "<TEMP-OUTPUT>:[<WIDTH-OUTPUT><HEIGHT-OUTPUT><WIDTH-OUTPUT><HEIGHT-OUTPUT>], "
        "<TEMP-OUTPUT>:[<WIDTH-OUTPUT><HEIGHT-OUTPUT><WIDTH-OUTPUT><HEIGHT-OUTPUT>]"
    )
    v = variables.to_dict()
    assert v["temporal_input_locations"] == [0.1]
    assert v["temporal_output_locations"] == [0.25, 0.5, 0.25, 0.5]
    assert v["spatial_width_output_locations"] == [0.1, 0.3, 0.2, 0.4]
    assert v["spatial_height_output_locations"] == [0.2, 0.4, 0.2, 0.4]
    with pytest.raises(SourceError, match="starts after it ends"):
        render("{s}", {"s": Span(0.6, 0.5)}, variables=Variables(), role="gpt")
