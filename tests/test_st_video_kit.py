"""The small kit extensions the ST-Align video sources rely on (each in a ``kit:`` commit)."""

import pytest

from m4_pipeline.media.sampling import VideoInfo
from m4_pipeline.media.video import probe, read_frames
from m4_pipeline.synthetic import write_video


@pytest.mark.parametrize("name", ["clip.webm", "video-abc", "clip.avi", "clip.mov", "clip.mp4"])
def test_write_video_uses_the_container_its_name_says(tmp_path, name):
    """SSv2 ships VP9 ``.webm`` files, DiDeMo ``.avi``/``.mov`` ones, QuerYD/VTG-IT downloaders
    ``video-<id>`` files without a suffix: the synthetic writer makes each decodable as named."""
    path = tmp_path / name
    write_video(path, seed=1, num_frames=20, fps=5, size=(96, 64))
    info = probe(path)
    assert (info.num_frames, info.fps, info.width, info.height) == (20, 5.0, 96, 64)
    assert [f.index for f in read_frames(path, [0, 19])] == [0, 19]
    if name.endswith(".webm"):
        assert path.read_bytes()[:4] == b"\x1a\x45\xdf\xa3"  # EBML (Matroska/WebM), not an mp4 box
    if "." not in name:
        assert path.read_bytes()[4:8] == b"ftyp"  # an mp4 despite the missing suffix


def test_probe_provenance_names_frames_and_rate():
    assert VideoInfo(810, 30.0, 160, 96).provenance() == "video_probe: 810 frames at 30 fps, 160x96"
    assert VideoInfo(75, 29.97, 64, 48).provenance() == "video_probe: 75 frames at 29.97 fps, 64x48"


def test_declarative_st_samples_record_the_probe(tmp_path):
    from m4_pipeline.adapters import REGISTRY, declare

    spec = {
        "name": "kit_probe_demo",
        "family": "st",
        "reader": "jsonl",
        "files": ["ann.jsonl"],
        "id": "{vid}",
        "video": "v/{vid}.mp4",
        "human": "<video>\nDescribe it.",
        "gpt": "{caption}",
    }
    cls = declare(spec, "test")
    try:
        (tmp_path / "ann.jsonl").write_text('{"vid": "a", "caption": "a box moves"}\n')
        write_video(tmp_path / "v" / "a.mp4", seed=2, num_frames=40, fps=10, size=(96, 64))
        adapter = cls(tmp_path)
        sample = adapter.build(next(adapter.list_records()))
    finally:
        REGISTRY.pop("kit_probe_demo")  # a throwaway declaration, not a source of the session
    assert "video_probe: 40 frames at 10 fps, 96x64" in sample.provenance.ops


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0:00:05.300", 5.3), ("01:02:03.5", 3723.5), ("2:59.999", 179.999), ("0:00:00.000", 0.0), ("12:00:00", 43200.0)],
)
def test_clock_times_become_seconds(text, seconds):
    from m4_pipeline.coords import hms_seconds
    from m4_pipeline.templates import evaluate

    assert hms_seconds(text) == seconds
    assert float(evaluate("t|hms", {"t": text})) == seconds


@pytest.mark.parametrize("bad", ["5.3", "0:60:00", "0:00:61", "a:b:c", "", None, 12])
def test_bad_clock_times_are_annotation_errors(bad):
    from m4_pipeline.coords import hms_seconds
    from m4_pipeline.errors import SourceError

    with pytest.raises(SourceError, match="clock time|past 59"):
        hms_seconds(bad)


def test_declarative_clip_without_a_moment(tmp_path):
    """A clip (meta.split) with no moment inside: captions of a clip, QA over a clip (STAR)."""
    from m4_pipeline.adapters import REGISTRY, declare

    spec = {
        "name": "kit_clip_demo",
        "family": "st",
        "reader": "jsonl",
        "files": ["ann.jsonl"],
        "id": "{vid}",
        "video": "v/{vid}.mp4",
        "time_unit": "seconds",
        "clip_start": "{t0|hms}",
        "clip_end": "{t1|hms}",
        "human": "<video>\nDescribe it.",
        "gpt": "{caption}",
    }
    cls = declare(spec, "test")
    try:
        (tmp_path / "ann.jsonl").write_text('{"vid": "a", "t0": "0:00:01.000", "t1": "0:00:03.500", "caption": "x"}\n')
        write_video(tmp_path / "v" / "a.mp4", seed=2, num_frames=40, fps=10, size=(96, 64))
        adapter = cls(tmp_path)
        sample = adapter.build(next(adapter.list_records()))
    finally:
        REGISTRY.pop("kit_clip_demo")
    assert sample.record["meta"]["split"] == [10, 35]  # 1.0 s and 3.5 s at 10 fps
    assert [m.frame_index for m in sample.media][::99] == [10, 35]
    assert all(not v for v in sample.record["variables"].values())
