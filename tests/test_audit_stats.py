"""Audit statistics: exact counts on the demo shards, exact merges, targets and the comparison."""

import json
from collections import Counter

import pytest

from m4_pipeline.audit import compare, compute_stats, format_comparison, load_targets, new_stats, stats_for_samples
from m4_pipeline.audit.compare import MISSING, NO_TARGET, OK, OVER, UNDER, UNEXPECTED
from m4_pipeline.audit.hist import Histogram, step_edges
from m4_pipeline.audit.runlog import read_run_logs
from m4_pipeline.audit.stats import StatsMergeError
from m4_pipeline.audit.targets import Targets
from m4_pipeline.audit.text import boxes_per_tube, coord_tokens, placeholder_placement, span_lengths
from m4_pipeline.audit.writers import read_stats, write_stats
from m4_pipeline.inspect_shards import iter_samples, shard_paths
from m4_pipeline.sample import Media, Provenance, Sample, Turn

BOX = "[<WIDTH-OUTPUT><HEIGHT-OUTPUT><WIDTH-OUTPUT><HEIGHT-OUTPUT>]"


def m4_sample(i: int, dataset: str = "NLVR2", *, images: int = 2, front: bool = True, qtype="multi-choice") -> Sample:
    text = "<image>" * images + "\nSame?" if front else "Left <image> and right" + " <image>" * (images - 1)
    return Sample(
        key=f"m4-{dataset}-{i}",
        family="m4",
        conversations=[Turn("human", text), Turn("gpt", "True")],
        record={
            "sample_id": i,
            "image": [f"x/{k}.jpg" for k in range(images)],
            "choice_list": None,
            "metadata": {"dataset": dataset, "question_type": qtype},
        },  # fmt: skip
        media=[Media("image", k, size=[320 + 64 * k, 240]) for k in range(images)],
        provenance=Provenance(dataset=dataset.lower(), source_file="f", locator=str(i)),
    )


def st_sample(i: int, boxes: int = 2) -> Sample:
    tube = ", ".join(f"<TEMP-OUTPUT>:{BOX}" for _ in range(boxes))
    variables = {
        "temporal_input_locations": [],
        "temporal_output_locations": [0.1, 0.4] + [round(0.1 + 0.1 * k, 3) for k in range(boxes)],
        "spatial_height_input_locations": [],
        "spatial_height_output_locations": [0.2, 0.6] * boxes,
        "spatial_width_input_locations": [],
        "spatial_width_output_locations": [0.3, 0.5] * boxes,
    }
    return Sample(
        key=f"st-{i}",
        family="st",
        conversations=[Turn("human", "<video>\nWhere?"), Turn("gpt", f"During {{<TEMP-OUTPUT><TEMP-OUTPUT>}}: {tube}")],
        record={"id": str(i), "video": "v.mp4", "meta": {"split": [0, 99]}, "variables": variables},
        media=[Media("frame", 0, frame_index=k, timestamp=k / 30, size=[160, 96]) for k in range(100)],
        provenance=Provenance(dataset="vidstg", source_file="f", locator=str(i)),
    )


def mixed_samples() -> list[Sample]:
    return (
        [m4_sample(i) for i in range(5)]
        + [m4_sample(i, "ScanQA", images=4, qtype="open-ended") for i in range(3)]
        + [m4_sample(9, "Mystery", front=False)]
        + [st_sample(i, boxes=1 + i) for i in range(3)]
    )


# --- text parsing -----------------------------------------------------------------------------


def test_placement_front_interleaved_none():
    assert placeholder_placement(m4_sample(0)) == "front"
    assert placeholder_placement(m4_sample(0, front=False)) == "interleaved"
    s = m4_sample(0)
    s.conversations = [Turn("human", "no media"), Turn("gpt", "ok")]
    assert placeholder_placement(s) == "none"


def test_st_tokens_spans_and_tubes():
    s = st_sample(0, boxes=3)
    tokens = coord_tokens(s)
    assert [t.value for t in tokens if t.axis == "TEMP"] == [0.1, 0.4, 0.1, 0.2, 0.3]
    assert span_lengths(s, tokens) == [0.3]
    assert boxes_per_tube(s) == [3]


# --- histograms and merge ---------------------------------------------------------------------


def test_histogram_bins_closed_top_and_overflow():
    h = Histogram(step_edges(0.0, 1.0, 0.25), scale=1000)
    for v in (-0.1, 0.0, 0.25, 0.99, 1.0, 1.5):
        h.add(v)
    assert h.counts == [1, 1, 1, 0, 2, 1]  # under, [0,.25), [.25,.5), [.5,.75), [.75,1], over
    assert (h.n, h.min, h.max, h.scaled_sum) == (6, -0.1, 1.5, 3640)


def test_merge_is_associative_and_commutative():
    samples = mixed_samples()
    a, b, c = (stats_for_samples(samples[k::3]) for k in range(3))
    whole = stats_for_samples(samples)
    assert (a.merge(b)).merge(c) == a.merge(b.merge(c)) == whole
    assert c.merge(a).merge(b) == whole
    assert whole.to_dict() == (a + b + c).to_dict()


def test_merge_refuses_different_tokenizers():
    other = new_stats(count_tokens=len, tokenizer_name="characters")
    with pytest.raises(StatsMergeError, match="tokenizer"):
        new_stats().merge(other)


def test_custom_tokenizer_is_used_and_labelled():
    s = stats_for_samples([m4_sample(0)], count_tokens=lambda text: 7, tokenizer_name="seven")
    assert s.tokenizer == "seven" and s.hists["text_tokens"].scaled_sum == 7


def test_synthetic_counts(tmp_path):
    stats = stats_for_samples(mixed_samples(), targets=load_targets())
    assert stats.by("dataset") == {"NLVR2": 5, "ScanQA": 3, "vidstg": 3, "Mystery": 1}
    assert stats.by("task")["multi-image VQA"] == 5
    assert stats.by("task")["unmapped"] == 1
    assert stats.by("stage") == {"-": 9, "3": 3}
    assert stats.placement == Counter(front=11, interleaved=1)
    assert stats.hists["st_boxes_per_tube"].counts[1 + 1 : 1 + 4] == [1, 1, 1]
    # JSON and Parquet writers; JSON reads back equal
    back = read_stats(write_stats(stats, tmp_path / "s.json"))
    assert back == stats
    import pyarrow.parquet as pq

    table = pq.read_table(write_stats(stats, tmp_path / "s.parquet"))
    assert {"section", "name", "key", "low", "high", "value"} <= set(table.column_names)


# --- targets and comparison -------------------------------------------------------------------


def test_targets_manifests_match_the_published_tables():
    t = load_targets()
    assert sum(r.samples for r in t.st) == 4_331_000  # the paper's 4.331M
    assert t.m4_row("NLVR2").count == 86_400 and t.m4_row("nlvr2").dataset == "NLVR2"
    assert t.m4_row("MMChat").count is None
    assert {r.domain for r in t.m4} == {"multi-image", "video", "3D", "single-image"}
    assert len(t.m4) == 41
    assert t.st_row("vidstg").code == "STVG" and t.st_row("vidstg").stage == 3


def test_compare_rows_and_tolerance_flags():
    targets = load_targets()
    samples = [m4_sample(i) for i in range(864)] + [m4_sample(i, "ScanQA") for i in range(300)]
    samples += [m4_sample(0, "Mystery")] + [st_sample(i) for i in range(10)]
    stats = stats_for_samples(samples, targets=targets)
    rows = {(r.family, r.name): r for r in compare(stats, targets, tolerance=0.1, scale=0.01)}
    assert rows[("m4", "NLVR2")].status == OK and rows[("m4", "NLVR2")].ratio == 1.0  # 864 vs 86400 * 0.01
    assert rows[("m4", "ScanQA")].status == OVER and rows[("m4", "ScanQA")].out_of_tolerance  # 300 vs 256
    assert rows[("m4", "VIST")].status == MISSING and rows[("m4", "VIST")].out_of_tolerance
    assert rows[("m4", "MMChat")].status == NO_TARGET and not rows[("m4", "MMChat")].out_of_tolerance
    assert rows[("m4", "Mystery")].status == UNEXPECTED and rows[("m4", "Mystery")].out_of_tolerance
    assert rows[("st", "STVG")].status == UNDER and rows[("st", "STVG")].produced == 10  # 10 vs 810
    loose = {(r.family, r.name): r for r in compare(stats, targets, tolerance=0.2, scale=0.01)}
    assert loose[("m4", "ScanQA")].status == OK  # 300 / 256 = 1.17
    text = format_comparison(list(rows.values()), only_produced=True)
    assert "NLVR2" in text and "VIST" not in text and "!" in text
    with pytest.raises(ValueError):
        compare(stats, Targets(), scale=0)


# --- on the demo shards -------------------------------------------------------------------------


@pytest.mark.slow
def test_demo_stats_exact(demo_build):
    out, manifest = demo_build
    stats = compute_stats(out)
    assert stats.samples == 50 and stats.unreadable == 0
    assert stats.by("dataset") == {"NExT-QA": 14, "NLVR2": 12, "ScanQA": 12, "LLaVA-1.5-mix665k": 6, "vidstg": 6}
    assert stats.by("domain") == {"video": 14, "3D": 12, "multi-image": 12, "single-image": 6, "st-video": 6}
    assert stats.by("family") == {"m4": 44, "st": 6}
    assert stats.by("stage") == {"-": 44, "3": 6}
    assert stats.by("task") == {
        "video VQA": 14,
        "multi-image VQA": 12,
        "scene VQA": 12,
        "instruction following (anyres multi-patch)": 6,
        "spatial-temporal video grounding (STVG)": 6,
    }
    assert stats.question_types == Counter({"multi-choice": 26, "open-ended": 18, "unspecified (st)": 6})
    h = stats.hists
    assert h["images_per_sample"].n == 12 and h["images_per_sample"].counts[1 + 2] == 12  # NLVR2: 2 images
    assert h["frames_per_video"].counts[1 + 8] == 14 and h["frames_per_video"].counts[1 + 100] == 6
    assert h["views_per_3d_sample"].n == 12 and h["views_per_3d_sample"].counts[1 + 4] == 12
    assert h["patches_per_sample"].n == 6 and h["patches_per_sample"].min >= 2  # base + tiles
    assert stats.media_kinds["frame"] == 14 * 8 + 6 * 100
    assert stats.media_kinds["view"] == 48 and stats.media_kinds["image"] == 24
    assert h["turns_per_conversation"].n == 50
    # ST: one span and one tube per sample; every tube box has one time and two x / two y values
    boxes = h["st_boxes_per_tube"].scaled_sum
    assert h["st_boxes_per_tube"].n == 6 and h["st_span_length"].n == 6
    assert h["st_temporal_output_locations"].n == 2 * 6 + boxes
    assert h["st_spatial_width_output_locations"].n == h["st_spatial_height_output_locations"].n == 2 * boxes
    assert 0.0 <= h["st_spatial_width_output_locations"].min and h["st_spatial_width_output_locations"].max <= 1.0
    # the run's own accounting, folded in
    assert stats.run is not None
    assert stats.run.totals["written"] == 50 == manifest["totals"]["written"]
    assert stats.run.quarantined_by_reason == Counter(filtered=1)
    assert stats.run.duplicates_by_reason == Counter(exact_duplicate=1)
    assert read_run_logs(out).sources["llava_mix"]["quarantined:filtered"] == 1
    json.dumps(stats.to_dict())  # JSON-ready


@pytest.mark.slow
def test_demo_merge_per_shard_and_halves_equals_whole(demo_build):
    out, _ = demo_build
    whole = compute_stats(out, with_run_logs=False)
    per_shard = [compute_stats([p]) for p in shard_paths(out)]
    total = per_shard[0]
    for part in per_shard[1:]:
        total = total.merge(part)
    assert total == whole
    samples = [s for _, s, _ in iter_samples(shard_paths(out))]
    targets = load_targets()
    half = len(samples) // 2
    first, second = (
        stats_for_samples(samples[:half], targets=targets),
        stats_for_samples(samples[half:], targets=targets),
    )
    assert first.merge(second) == whole == second.merge(first)


@pytest.mark.slow
def test_demo_compare(demo_build):
    out, _ = demo_build
    stats = compute_stats(out)
    rows = {r.name: r for r in compare(stats, load_targets(), tolerance=0.1, scale=12 / 86_400)}
    assert rows["NLVR2"].status == OK and rows["NLVR2"].produced == 12
    assert rows["NExT-QA"].status == OVER and rows["LLaVA-1.5-mix665k"].status == UNDER
    assert rows["STVG"].produced == 6
    assert not [r for r in rows.values() if r.status == UNEXPECTED]
