"""The ST-Align video sources: their layouts' awkward parts, their parsers, and the stage recipes."""

import json
from pathlib import Path

import pytest

from m4_pipeline.adapters import get_adapter, sources, write_miniature
from m4_pipeline.adapters.st_video.captions import literal_list
from m4_pipeline.adapters.st_video.conversations import LITA_TIME, SECONDS_TAG
from m4_pipeline.adapters.st_video.dense import vtg_events
from m4_pipeline.adapters.st_video.grounding import quoted_query, vtg_moment
from m4_pipeline.adapters.st_video.instructions import SUBSETS
from m4_pipeline.adapters.st_video.moments import vtimellm_task
from m4_pipeline.audit.targets import load_st_targets
from m4_pipeline.errors import SourceError
from m4_pipeline.recipe import load_recipe

ROOT = Path(__file__).resolve().parent.parent
STAGES = {n: ROOT / "recipes" / f"st_align_stage{n}.yaml" for n in (1, 2, 3)}
PLACEHOLDERS: set[str] = set()  # sources whose sampling the image / spatio-temporal parts leave open


def _st_video(name):
    """The ST video sources: this package's adapters and ST declarations that read a video."""
    cls = get_adapter(name)
    declared_video = bool(getattr(cls, "declared", None)) and bool(getattr(cls.Params(), "video", ""))
    return cls.family == "st" and (cls.__module__.startswith("m4_pipeline.adapters.st_video") or declared_video)


ST_VIDEO = [s for s in sources() if _st_video(s)]


def samples_of(name, root, **params):
    cls = get_adapter(name)
    adapter = cls(root, cls.Params(**params))
    out = {}
    for record in adapter.list_records():
        try:
            out[record.locator] = adapter.build(record)
        except SourceError as err:
            out[record.locator] = err
    return out


# --- parsers ---------------------------------------------------------------------------------------


def test_panda_cells_are_literals_only():
    assert literal_list("[['0:00:00.000', '0:00:05.005']]", "t") == [["0:00:00.000", "0:00:05.005"]]
    assert literal_list('[\'a "quoted" caption\', "it\'s"]', "t") == ['a "quoted" caption', "it's"]
    for bad in ["__import__('os').system('true')", "[open('x')]", "[['0:00', '0:01']", "{'a': 1}", "1+1"]:
        with pytest.raises(SourceError):
            literal_list(bad, "t")


@pytest.mark.parametrize(
    ("answer", "moment"),
    [
        ("The given query happens in 12.0 - 16.0 seconds.", (12.0, 16.0)),
        ("The given query happens in 0012.0 - 0016.0 seconds.", (12.0, 16.0)),
        ("The given query happens in 12 seconds - 16 seconds.", (12.0, 16.0)),
        ("happens in <TIME_ONE><TIME_TWO><TIME_DOT><TIME_FIVE> - <TIME_TWO><TIME_ZERO><TIME_DOT><TIME_ZERO> seconds",
         (12.5, 20.0)),
        ("The given query happens in 7.5 seconds.", (7.5, 7.5)),
    ],
)  # fmt: skip
def test_vtg_it_moments_in_both_time_formats(answer, moment):
    assert vtg_moment(answer, "t") == moment


def test_vtg_it_dense_answers_and_quoted_queries():
    a = "21.0 - 22.0 seconds, begin to run up.  23.0 - 24.0 seconds, begin to jump up.  0025.0 - 0026.5 seconds, fall."
    assert vtg_events(a, "t") == [(21.0, 22.0, "begin to run up."), (23.0, 24.0, "begin to jump up."),
                                  (25.0, 26.5, "fall.")]  # fmt: skip
    assert vtg_events("3.0 seconds, intro.  9.5 seconds, cooking.", "t") == [(3.0, None, "intro."),
                                                                              (9.5, None, "cooking.")]  # fmt: skip
    with pytest.raises(SourceError):
        vtg_events("no times at all", "t")
    assert quoted_query("Find the query 'a man's hat falls' in the video.", "t") == "a man's hat falls"
    with pytest.raises(SourceError):
        quoted_query("Where is it?", "t")


def test_time_tag_patterns():
    assert [m.group(0) for m in LITA_TIME.finditer("at <12.3>, <.5>, <1.> and <30> not <video> or <a1>")] == [
        "<12.3>", "<.5>", "<1.>", "<30>"]  # fmt: skip
    assert [m.group(0) for m in SECONDS_TAG.finditer("<image>\nFrom <2.5> to <10> <s0>")] == ["<2.5>", "<10>"]


def test_vtimellm_task_follows_where_the_tokens_are():
    assert vtimellm_task("What happens from <s0> to <e0>?", "A box moves.") == "tr"
    assert vtimellm_task("Describe the events.", "From <s0> to <e0>, a. From <s1> to <e1>, b.") == "dvc"
    assert vtimellm_task("When does it move?", "From <s0> to <e0>.") == "tvg"
    assert vtimellm_task("Hi", "Hello") == "none"


# --- layouts ---------------------------------------------------------------------------------------


def test_videochat2_it_subsets_read_qa_as_turns(tmp_path):
    write_miniature("st_videochat2_it", tmp_path)
    cls = get_adapter("st_videochat2_it")
    adapter = cls(tmp_path, cls.Params(subsets=["conversation_videochat2", "caption_textvr"]))
    built = {r.source_id: adapter.build(r) for r in adapter.list_records()}
    conv = built["conversation_videochat2-0"]
    assert [t.role for t in conv.conversations] == ["human", "gpt", "human", "gpt"]
    assert conv.conversations[0].value == "<video>\nWhat moves?" and conv.conversations[2].value == "Where does it go?"
    caption = built["caption_textvr-0"]  # the instruction i, an empty question q
    assert caption.conversations[0].value == "<video>\nDescribe the following video concisely."
    assert caption.record["video"] == "TextVR/Video/caption_textvr_0.mp4"
    assert built["caption_textvr-2"].record["meta"]["split"] == [5, 32]  # start/end 1.0-6.5 s at 5 fps
    with pytest.raises(Exception, match="unknown VideoChat2-IT subset"):
        cls(tmp_path, cls.Params(subsets=["nope"])).preflight()
    assert set(SUBSETS) >= {
        "vqa_ego_qa",
        "vqa_webvid_qa",
        "conversation_videochat2",
        "caption_textvr",
        "caption_youcook2",
        "caption_webvid",
        "classification_ssv2",
        "classification_k710",
    }


def test_llava_style_files_put_video_first(tmp_path):
    write_miniature("st_vcg_plus", tmp_path)
    out = samples_of("st_vcg_plus", tmp_path)
    assert out["index 1"].conversations[0].value == "<video>\nDescribe the video."  # was after the text
    assert out["index 0"].key != out["index 2"].key  # a repeated id keeps unique keys
    assert isinstance(out["index 3"], SourceError)  # a question without an answer


def test_moment10m_variables_become_spans(tmp_path):
    write_miniature("st_moment10m", tmp_path)
    out = samples_of("st_moment10m", tmp_path)
    cross = out["key -7kE8JN7t4c cross_segment_qa_data[0]"]
    # 40 s at 4 fps = 160 frames, 0..159: SOURCE_CLIP [0, 8] s -> 0, 32 -> 0.0, 32/159 = 0.201;
    # moments [10, 14], [20.5, 24] -> 40, 56, 82, 96 -> 0.252, 0.352, 0.516, 0.604
    assert cross.record["variables"]["temporal_input_locations"] == [0.0, 0.201]
    assert cross.record["variables"]["temporal_output_locations"] == [0.252, 0.352, 0.516, 0.604]
    assert cross.conversations[0].value == "<video>\nWhere does the red box go after {<TEMP-INPUT><TEMP-INPUT>}?"
    assert cross.conversations[1].value.endswith("{<TEMP-OUTPUT><TEMP-OUTPUT>} and {<TEMP-OUTPUT><TEMP-OUTPUT>}.")
    assert out["key -7kE8JN7t4c segment_caption_data[1]"].reason == "filtered"  # below Momentor's threshold
    assert out["key -7kE8JN7t4c appearance_data[0]"].reason == "filtered"  # click_position
    everything = samples_of("st_moment10m", tmp_path, thresholds={})
    assert not isinstance(everything["key -7kE8JN7t4c segment_caption_data[1]"], SourceError)


def test_youcook2_tries_the_video_extensions(tmp_path):
    write_miniature("st_youcook2", tmp_path)
    out = samples_of("st_youcook2", tmp_path)
    assert out["key xHr8X2Wpmno"].record["video"] == "raw_videos/training/113/xHr8X2Wpmno.webm"
    assert out["key noVideoHere"].reason == "missing_media"
    assert "key V53XmPeyjIU" not in out  # a validation video: subsets keeps training


def test_internvid_g_groups_the_moments_of_a_video(tmp_path):
    write_miniature("st_internvid_g", tmp_path)
    out = samples_of("st_internvid_g", tmp_path, tasks=["dvc"])
    # xHr8X2Wpmno (30 s at 5 fps = 150 frames): lines 1 and 3, not adjacent: [2, 9.5] and [21, 30] s
    # -> frames 10, 48 (47.5 rounds to even), 105, 150 -> the last frame 149:
    # 10/149 = 0.067, 48/149 = 0.322, 105/149 = 0.705, 1.0
    group = out["video xHr8X2Wpmno.mp4 (line 1, line 3)"]
    assert group.record["variables"]["temporal_output_locations"] == [0.067, 0.322, 0.705, 1.0]


def test_panda_clips_of_one_video(tmp_path):
    write_miniature("st_panda70m", tmp_path)
    out = samples_of("st_panda70m", tmp_path)
    # 15 s at 4 fps = 60 frames: clips [0, 4.004] and [10.51, 15.0] -> [0, 16] and [42, 59]
    assert out["row 2 clip 0"].record["meta"]["split"] == [0, 16]
    assert out["row 2 clip 2"].record["meta"]["split"] == [42, 59]
    assert isinstance(out["row 3 clip 1"], SourceError)  # past the video's end
    assert out["row 5 clip 0"].key.endswith("-dup1-0")  # the same videoID again
    high = samples_of("st_panda70m", tmp_path, min_matching_score=0.4)
    assert high["row 2 clip 1"].reason == "filtered" and not isinstance(high["row 2 clip 0"], SourceError)


def test_ssv2_webm_and_kinetics_clip_names(miniatures):
    ssv2 = samples_of("st_ssv2", miniatures / "st_ssv2")
    assert all(s.record["video"].endswith(".webm") for s in ssv2.values())
    kinetics = samples_of("st_kinetics", miniatures / "st_kinetics")
    assert kinetics["row 4"].record["video"] == "kinetics400/train/-0nJJgKnc_U_000289_000299.mp4"


def test_every_st_video_sample_has_100_frames_and_the_probe(miniatures):
    for name in ST_VIDEO:
        for s in samples_of(name, miniatures / name).values():
            if isinstance(s, SourceError):
                continue
            assert len(s.media) == 100 and all(m.kind == "frame" for m in s.media), name
            assert any(op.startswith("video_probe: ") for op in s.provenance.ops), name
            split = s.record.get("meta", {}).get("split")
            if split:
                assert s.media[0].frame_index == split[0] and s.media[-1].frame_index == split[1], name


# --- recipes -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_stage_recipes_map_every_source_to_a_task_row_of_their_stage(stage):
    recipe = load_recipe(STAGES[stage])
    targets = load_st_targets()
    for src in recipe.sources:
        rows = [t for t in targets if src.name in t.match]
        assert len(rows) == 1, f"{src.name}: matched by {len(rows)} target rows"
        assert rows[0].stage == stage, f"{src.name} is in stage {stage} but its row is stage {rows[0].stage}"
    video_rows = {t.label for t in targets if t.stage == stage and any(m in {s.name for s in recipe.sources}
                                                                        for m in t.match)}  # fmt: skip
    expected = {1: {"1|video captioning (CAP)"},
                2: {"2|temporal video grounding (TVG)", "2|dense video captioning (DVC)", "2|temporal referring (TR)",
                    "2|referring expression comprehension (REC)", "2|dense grounded captioning (DGC)",
                    "2|region caption (REG)"},
                3: {"3|temporal grounded conversation (TGC)", "3|temporal video grounding (TVG)",
                    "3|dense video captioning (DVC)", "3|conversation (CONV)", "3|video QA (VQA)",
                    "3|classification (CLS)", "3|video captioning (CAP)",
                    "3|spatial-temporal video grounding (STVG)", "3|image grounded conversation (IGC)",
                    "3|referring expression comprehension (REC)", "3|dense grounded captioning (DGC)",
                    "3|region caption (REG)", "3|event localization and captioning (ELC)",
                    "3|spatial video grounding (SVG)"}}[stage]  # fmt: skip
    assert video_rows == expected  # every published row of the stage


def test_sampling_splits_add_up_to_the_published_totals():
    targets = {t.label: t for t in load_st_targets()}
    for path in STAGES.values():
        per_row: dict[str, int] = {}
        for src in load_recipe(path).sources:
            if src.name in PLACEHOLDERS:
                continue
            row = next(t for t in targets.values() if src.name in t.match)
            assert src.sampling.mode == "random", src.name
            per_row[row.label] = per_row.get(row.label, 0) + src.sampling.n
        for label, n in per_row.items():
            assert n == targets[label].samples, f"{label}: {n} != {targets[label].samples}"


@pytest.mark.slow
@pytest.mark.parametrize("stage", [1, 2, 3])
def test_stage_recipe_builds_every_task_on_the_miniatures(ray_session, tmp_path, stage):
    from m4_pipeline.audit.stats import compute_stats
    from m4_pipeline.executor import run_build
    from m4_pipeline.inspect_shards import validate_shards

    recipe = load_recipe(STAGES[stage])
    for src in recipe.sources:
        if not (tmp_path / "src" / src.path).exists():
            write_miniature(src.adapter, tmp_path / "src" / src.path)
    manifest = run_build(recipe, tmp_path / "src", tmp_path / "out", progress=False)
    for name, s in manifest["sources"].items():
        assert s["written"] > 0, name
        assert "validation" not in s["quarantined"], (name, s["quarantined"])
    assert validate_shards(tmp_path / "out")["problems"] == []
    stats = compute_stats(tmp_path / "out")
    produced = {key[3] for key in stats.groups if key[0] == "st" and key[2] == str(stage)}
    names = {src.name for src in recipe.sources}
    rows = {f"{t.task} ({t.code})" for t in load_st_targets() if t.stage == stage and names & set(t.match)}
    assert rows and rows <= produced


def test_miniature_layouts_are_the_published_ones(tmp_path):
    write_miniature("st_vitt", tmp_path / "vitt")
    text = (tmp_path / "vitt" / "ViTT-annotations.json").read_text()
    assert text.startswith("{") and "\n{" in text  # JSON lines under a .json name, as released
    write_miniature("st_coin", tmp_path / "coin")
    assert set(json.loads((tmp_path / "coin" / "COIN.json").read_text())) == {"version", "database"}
    write_miniature("st_queryd", tmp_path / "queryd")
    assert (tmp_path / "queryd" / "raw_captions_combined_filtered.pkl").read_bytes()[:2] == b"\x80\x02"
    assert (tmp_path / "queryd" / "videos" / "video-fTcSVQJ2h8g").is_file()  # no suffix, as downloaded


_JUNK = [None, "", "x", -1, 1e9, [], {}, [1, 2, 3], {"a": 1}, True, "0:99:99", [None, None]]
_STRUCTURE = {"subset", "task", "pair", "_key", "type", "key", "lines"}  # keys the listing itself writes


def _mutate(obj, rng, depth=0):
    """One field somewhere in the record replaced by junk (the listing's own keys left alone)."""
    if isinstance(obj, dict) and obj:
        keys = [k for k in obj if not (depth == 0 and k in _STRUCTURE)]
        if not keys:
            return obj
        k = rng.choice(keys)
        return {**obj, k: rng.choice(_JUNK) if rng.random() < 0.5 or depth > 4 else _mutate(obj[k], rng, depth + 1)}
    if isinstance(obj, list) and obj:
        i = rng.randrange(len(obj))
        out = list(obj)
        out[i] = rng.choice(_JUNK) if rng.random() < 0.5 or depth > 4 else _mutate(obj[i], rng, depth + 1)
        return out
    return rng.choice(_JUNK)


def test_junk_in_any_annotation_field_is_a_source_error(miniatures):
    """Wrong types, missing values, NaN-like strings anywhere in a record: quarantined with a reason,
    never another exception type (which would be an adapter bug)."""
    import random

    from m4_pipeline.adapters.base import RawRecord

    rng = random.Random(0)
    for name in ST_VIDEO:
        adapter = get_adapter(name)(miniatures / name)
        for record in [r for r in adapter.list_records() if r.error is None]:
            for _ in range(3):
                data = json.loads(json.dumps(_mutate(record.data, rng)))
                try:
                    adapter.build(RawRecord(record.source_file, record.locator, record.source_id, data))
                except SourceError:
                    pass
