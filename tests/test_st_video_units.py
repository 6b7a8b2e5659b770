"""Unit conversions of the ST video sources at their boundaries, with values worked out by hand.

The published rules: a time t (seconds) is the frame round(t * fps) of the video as decoded; up to
one frame past the last frame it is the last frame, further it is an error; a time value is
(frame - s0) / (s1 - s0) over the inclusive meta.split [s0, s1] (the whole video [0, n-1] without
one), rounded to 3 decimals. Each expected number below is that arithmetic done by hand, written
as a literal.
"""

import json
import pickle

import pytest

from m4_pipeline.adapters import get_adapter
from m4_pipeline.adapters.st_video.grounding import didemo_seconds
from m4_pipeline.errors import SourceError
from m4_pipeline.readers import UnsafePickleError
from m4_pipeline.synthetic import write_video
from m4_pipeline.validate import validate_sample


def build(name, root, params=None):
    cls = get_adapter(name)
    adapter = cls(root, params or cls.Params())
    out = {}
    for record in adapter.list_records():
        try:
            out[record.locator] = adapter.build(record)
        except SourceError as err:
            out[record.locator] = err
    return out


def times(sample, io="output"):
    return sample.record["variables"][f"temporal_{io}_locations"]


# --- DiDeMo: chunk 5 of a 27-second video ----------------------------------------------------------


def test_didemo_chunk_5_of_a_27_second_video_ends_at_27_seconds():
    # chunk 5 covers [5*5, min(5*6, 27)] = [25, 27] s, not [25, 30]
    assert didemo_seconds([[5, 5], [5, 5], [4, 5], [5, 5]], 27.0, "t") == (25.0, 27.0, [5, 5])
    # the annotators' most frequent pair wins; [4, 4] covers [20, 25]
    assert didemo_seconds([[4, 4], [4, 5], [4, 4], [3, 4]], 27.0, "t") == (20.0, 25.0, [4, 4])
    with pytest.raises(SourceError, match="past the video's end"):
        didemo_seconds([[5, 5]] * 4, 22.0, "t")  # chunk 5 would start at 25 s of a 22 s video
    with pytest.raises(SourceError):
        didemo_seconds([[2, 6]], 30.0, "t")  # chunk indices are 0-5


def test_didemo_sample_values_on_a_27_second_video(tmp_path):
    # 27 s at 10 fps = 270 frames, 0..269. 25 s -> frame 250; 27 s -> frame 270, one past the last:
    # the last frame 269. Values over [0, 269]: 250/269 = 0.92936 -> 0.929, 269/269 = 1.0.
    write_video(tmp_path / "videos" / "a@N00_1_x.avi", seed=1, num_frames=270, fps=10, size=(96, 64))
    items = [{"annotation_id": 7, "description": "the box reaches the edge", "video": "a@N00_1_x.avi",
              "times": [[5, 5], [5, 5], [4, 5], [5, 5]]},
             {"annotation_id": 8, "description": "the box is near the middle", "video": "a@N00_1_x.avi",
              "times": [[4, 4], [4, 4], [3, 4], [4, 5]]}]  # fmt: skip
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train_data.json").write_text(json.dumps(items))
    out = build("st_didemo", tmp_path)
    last, middle = out["index 0"], out["index 1"]
    assert times(last) == [0.929, 1.0]
    assert "time_at_video_end" in last.provenance.ops
    assert "video_probe: 270 frames at 10 fps, 96x64" in last.provenance.ops
    # [4, 4] -> [20, 25] s -> frames 200, 250 -> 200/269 = 0.74349 -> 0.743, 0.929
    assert times(middle) == [0.743, 0.929]
    assert "meta" not in last.record  # the whole video
    assert validate_sample(last) == [] and validate_sample(middle) == []


# --- ViTT: the last tag -------------------------------------------------------------------------------


def test_vitt_last_tag_in_milliseconds(tmp_path):
    # 27 s at 10 fps = 270 frames. Tags at 0, 12340 and 27000 ms: frames 0, round(123.4) = 123 and
    # 270 (one past the last frame: the last frame, 269). 123/269 = 0.45725 -> 0.457.
    # A tag at 27150 ms is 1.5 frames past the end: more than the one-frame tolerance.
    write_video(tmp_path / "videos" / "--L2.mp4", seed=2, num_frames=270, fps=10, size=(96, 64))
    lines = [
        {
            "id": "--L2",
            "annotations": [
                {"timestamp": 27000, "tag": "Result"},
                {"timestamp": 0, "tag": "Intro"},
                {"timestamp": 12340, "tag": "Mixing"},
            ],
        },
        {"id": "--L2", "annotations": [{"timestamp": 1000, "tag": "Start"}, {"timestamp": 27150, "tag": "Late"}]},
    ]
    (tmp_path / "ViTT-annotations.json").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (tmp_path / "train_id.txt").write_text("--L2\n")
    out = build("st_vitt", tmp_path)
    ok, late = out["line 1"], out["line 2"]
    assert times(ok) == [0.0, 0.457, 1.0]  # sorted by time; the last tag is the last frame
    assert ok.conversations[1].value.count("<TEMP-OUTPUT>") == 3 and "{" not in ok.conversations[1].value
    assert "time_at_video_end" in ok.provenance.ops
    assert isinstance(late, SourceError) and "past the video's end" in str(late)


# --- VTimeLLM: a split with a non-zero start ---------------------------------------------------------


def test_vtimellm_tokens_are_relative_to_a_split_with_a_non_zero_start(tmp_path):
    # 40 s at 5 fps = 200 frames. meta.split [12.4, 36.6] s -> frames 62 and 183 (12.4*5, 36.6*5).
    # <s0> = 0 -> 12.4 s -> 62 -> 0.0; <e0> = 9.4 -> 21.8 s -> 109 -> 47/121 = 0.38843 -> 0.388;
    # <s1> = 15.0 -> 27.4 s -> 137 -> 75/121 = 0.61983 -> 0.62; <e1> = 24.2 -> 36.6 s -> 183 -> 1.0.
    write_video(tmp_path / "videos" / "3n3oCNerzV0.mp4", seed=3, num_frames=200, fps=5, size=(96, 64))
    item = {"source": "internvid", "id": "3n3oCNerzV0",
            "conversations": [{"from": "human", "value": "<video>\nDescribe the events with their times."},
                              {"from": "gpt", "value": "From <s0> to <e0>, a box slides. From <s1> to <e1>, it stops."},
                              {"from": "human", "value": "What happens from <s1> to <e1>?"},
                              {"from": "gpt", "value": "It stops."},
                              {"from": "human", "value": "When does the box slide?"},
                              {"from": "gpt", "value": "From <s0> to <e0>."}],
            "meta": {"split": [12.4, 36.6], "duration": 24.2,
                     "token": {"<s0>": 0, "<e0>": 9.4, "<s1>": 15.0, "<e1>": 24.2}}}  # fmt: skip
    (tmp_path / "stage2.json").write_text(json.dumps([item]))
    out = build("st_vtimellm", tmp_path)
    dvc, tr, tvg = out["index 0 pair 0"], out["index 0 pair 1"], out["index 0 pair 2"]
    for s in (dvc, tr, tvg):
        assert s.record["meta"]["split"] == [62, 183]
        frames = [m.frame_index for m in s.media]
        assert len(frames) == 100 and frames[0] == 62 and frames[-1] == 183
        assert validate_sample(s) == []
    assert times(dvc) == [0.0, 0.388, 0.62, 1.0]
    assert times(tr, "input") == [0.62, 1.0] and times(tr) == []  # TR: the times are in the question
    assert times(tvg) == [0.0, 0.388]
    assert tr.conversations[0].value == "<video>\nWhat happens from <TEMP-INPUT> to <TEMP-INPUT>?"


def test_vtimellm_tasks_select_pairs_and_a_token_past_the_split_is_quarantined(tmp_path):
    write_video(tmp_path / "videos" / "x.mp4", seed=4, num_frames=100, fps=5, size=(96, 64))
    item = {"id": "x", "conversations": [{"from": "human", "value": "When does it move?"},
                                         {"from": "gpt", "value": "From <s0> to <e0>."}],
            "meta": {"split": [2.0, 10.0], "duration": 8.0, "token": {"<s0>": 1.0, "<e0>": 8.5}}}  # fmt: skip
    (tmp_path / "stage2.json").write_text(json.dumps([item]))
    cls = get_adapter("st_vtimellm")
    assert list(cls(tmp_path, cls.Params(tasks=["dvc"])).list_records()) == []  # a TVG pair only
    out = build("st_vtimellm", tmp_path)
    # <e0> = 8.5 s after 2.0 -> 10.5 s -> frame 52, past the split's last frame 50 (10.0 * 5)
    assert isinstance(out["index 0 pair 0"], SourceError) and "outside the frame range [10, 50]" in str(
        out["index 0 pair 0"]
    )


# --- STAR: a span past the video end --------------------------------------------------------------------


def _star_item(qid, start, end):
    choices = [
        {"choice_id": k, "choice": c, "choice_program": []}
        for k, c in enumerate(["A box.", "A cup.", "A door.", "A bag."])
    ]
    return {
        "question_id": qid,
        "question": "What did the person hold?",
        "video_id": "6H78U",
        "start": start,
        "end": end,
        "answer": "A box.",
        "question_program": [],
        "choices": choices,
        "situations": {},
    }


def test_star_start_end_become_meta_split_and_a_span_past_the_end_is_quarantined(tmp_path):
    # 20 s at 5 fps = 100 frames, 0..99. [4.0, 12.0] s -> frames [20, 60].
    # end 20.1 s -> frame 100.5 -> 100, one past the last frame: the last frame 99 (0.1 s <= 1/5 s).
    # end 26.3 s lies 6.3 s past the end: quarantined, never clamped.
    write_video(tmp_path / "Charades_v1_480" / "6H78U.mp4", seed=5, num_frames=100, fps=5, size=(96, 64))
    items = [_star_item("q1", 4.0, 12.0), _star_item("q2", 14.0, 20.1), _star_item("q3", 14.5, 26.3)]
    (tmp_path / "STAR_train.json").write_text(json.dumps(items))
    out = build("st_star", tmp_path)
    inside, at_end, past = out["index 0"], out["index 1"], out["index 2"]
    assert inside.record["meta"]["split"] == [20, 60]
    assert [m.frame_index for m in inside.media][::99] == [20, 60]
    assert inside.conversations[1].value == "A. A box."
    assert at_end.record["meta"]["split"] == [70, 99] and "time_at_video_end" in at_end.provenance.ops
    assert isinstance(past, SourceError) and past.reason == "invalid_annotation"
    assert "26.3 s lies past the video's end (20.000 s)" in str(past)


# --- QuerYD: pickles of plain data only -----------------------------------------------------------------


class _Touch:
    """A pickle that would create a file when loaded by a plain unpickler."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def test_queryd_refuses_a_pickle_that_names_any_global(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "raw_captions_combined_filtered.pkl").write_bytes(pickle.dumps({"video-a": [_Touch(marker)]}))
    (tmp_path / "times_captions_combined_filtered.pkl").write_bytes(pickle.dumps({"video-a": [[0.0, 1.0]]}))
    with pytest.raises(UnsafePickleError, match="refused"):
        list(get_adapter("st_queryd")(tmp_path).list_records())
    assert not marker.exists()


def test_queryd_point_answer_and_seconds(tmp_path):
    # 30 s at 4 fps = 120 frames, 0..119. [1.5, 9.25] s -> frames 6, 37 -> 6/119 = 0.0504 -> 0.05,
    # 37/119 = 0.3109 -> 0.311. A point at 12.0 s -> frame 48 -> 48/119 = 0.40336 -> 0.403.
    write_video(tmp_path / "videos" / "video-fTcSVQJ2h8g", seed=6, num_frames=120, fps=4, size=(96, 64))
    caps = {"video-fTcSVQJ2h8g": [["a", "box", "slides"], ["a", "flash"]]}
    spans = {"video-fTcSVQJ2h8g": [[1.5, 9.25], [12.0, 12.0]]}
    (tmp_path / "raw_captions_combined_filtered.pkl").write_bytes(pickle.dumps(caps, protocol=2))
    (tmp_path / "times_captions_combined_filtered.pkl").write_bytes(pickle.dumps(spans, protocol=2))
    out = build("st_queryd", tmp_path)
    span, point = out["key video-fTcSVQJ2h8g [0]"], out["key video-fTcSVQJ2h8g [1]"]
    assert times(span) == [0.05, 0.311] and "'a box slides'" in span.conversations[0].value
    assert times(point) == [0.403] and "{" not in point.conversations[1].value  # a time, not a span


# --- HiREST: integer bounds, clip false ----------------------------------------------------------------


def test_hirest_bounds_and_steps(tmp_path):
    # 40 s at 4 fps = 160 frames, 0..159. bounds [5, 29] -> frames 20, 116: TVG over the whole video
    # 20/159 = 0.12579 -> 0.126, 116/159 = 0.72956 -> 0.73. Steps inside the bounds (meta.split
    # [20, 116], 96 frames apart): [5, 12] -> 20, 48 -> 0.0, 28/96 = 0.29167 -> 0.292;
    # [12, 29] -> 48, 116 -> 0.292, 1.0.
    write_video(tmp_path / "videos" / "_7urSjT6sQY.mp4", seed=7, num_frames=160, fps=4, size=(96, 64))
    data = {
        "Make a Plaster Mask": {
            "_7urSjT6sQY.mp4": {
                "relevant": True,
                "clip": True,
                "v_duration": 40.0,
                "bounds": [5, 29],
                "steps": [
                    {"index": 1, "heading": "dry it", "absolute_bounds": [12, 29]},
                    {"index": 0, "heading": "clean the face", "absolute_bounds": [5, 12]},
                ],
            },
            "IUK9kqnz5Hc.mp4": {"relevant": True, "clip": False, "v_duration": 30.0, "bounds": [0, 0], "steps": []},
        }
    }
    (tmp_path / "data" / "splits").mkdir(parents=True)
    (tmp_path / "data" / "splits" / "all_data_train.json").write_text(json.dumps(data))
    out = build("st_hirest", tmp_path)
    tvg = out["key Make a Plaster Mask / _7urSjT6sQY.mp4 tvg"]
    dvc = out["key Make a Plaster Mask / _7urSjT6sQY.mp4 dvc"]
    assert times(tvg) == [0.126, 0.73] and "meta" not in tvg.record
    assert dvc.record["meta"]["split"] == [20, 116]
    assert times(dvc) == [0.0, 0.292, 0.292, 1.0]
    assert dvc.conversations[1].value.index("clean the face") < dvc.conversations[1].value.index("dry it")
    skipped = out["key Make a Plaster Mask / IUK9kqnz5Hc.mp4 tvg"]
    assert isinstance(skipped, SourceError) and skipped.reason == "filtered"
