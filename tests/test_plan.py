"""Streaming planning: exact sampling without a global list, units that read only their records."""

import json

import pytest

from m4_pipeline.adapters import declare
from m4_pipeline.plan import Rule, bucket_candidates, choose_rule, plan_part_units, survey_part, unit_records
from m4_pipeline.recipe import Sampling
from m4_pipeline.writer import ShardPlanner, plan_shards

SPEC = {"name": "plan_probe", "reader": "jsonl", "files": ["a.jsonl", "b.jsonl"], "id": "{i}", "images": [],
        "human": "{q}", "gpt": "{a}"}  # fmt: skip


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    root = tmp_path_factory.mktemp("plan")
    for name, lo, hi in (("a.jsonl", 0, 600), ("b.jsonl", 600, 1000)):
        lines = [json.dumps({"i": i, "q": f"question {i}", "a": "x" * (i % 37)}) for i in range(lo, hi)]
        lines[5] = "{broken"  # a malformed line is a record too (quarantined later)
        (root / name).write_text("\n".join(lines) + "\n")
    cls = declare(SPEC, "test", register=False)
    a = cls(root)
    a.part_bytes = 4000  # many parts per file
    return a


def plan(adapter, sampling, per_unit):
    parts = adapter.parts()
    surveys = [survey_part(adapter, p, sampling) for p in parts]
    rule, bucket = choose_rule(sampling, surveys)
    if rule is None:
        cands = [c for p in parts for c in bucket_candidates(adapter, p, sampling, bucket)]
        rule, _ = choose_rule(sampling, surveys, cands)
    units, base = [], 0
    for i, (p, s) in enumerate(zip(parts, surveys)):
        units += list(plan_part_units(adapter, "plan_probe", i, p, base, rule, per_unit))
        base += s["records"]
    chosen = [(o, r.source_id) for u in units for o, r in unit_records(adapter, u.to_row())]
    return parts, units, chosen


@pytest.mark.parametrize("per_unit", [7, 64])
def test_sampling_is_exact_and_independent_of_the_split(adapter, per_unit):
    everything = [r.source_id for r in adapter.list_records()]
    parts, units, chosen = plan(adapter, Sampling("all"), per_unit)
    assert len(parts) > 10 and [sid for _, sid in chosen] == everything
    assert all(u.count <= per_unit for u in units)
    _, _, first = plan(adapter, Sampling("first", 37), per_unit)
    assert [sid for _, sid in first] == everything[:37] and [o for o, _ in first] == list(range(37))
    _, units, rand = plan(adapter, Sampling("random", 123, seed=5), per_unit)
    assert len(rand) == 123 and [o for o, _ in rand] == sorted(o for o, _ in rand)  # listing order kept
    assert rand == plan(adapter, Sampling("random", 123, seed=5), 3)[2]  # whatever the unit size
    assert rand != plan(adapter, Sampling("random", 123, seed=6), per_unit)[2]
    for u in units:  # a unit reads its own records, from its own start
        assert u.walk >= u.count and (u.start[1] > 0 or u.start[0] == "a.jsonl")


def test_rule_random_bounds():
    assert (
        Rule("all").selects(5, "k")
        and Rule("first", limit=3).selects(2, "k")
        and not Rule("first", limit=3).selects(3, "k")
    )


def test_streaming_shard_planner_matches_the_in_memory_one():
    rows = [{"key": f"k{i:04d}", "nbytes": (i * 7919) % 5000 + 10} for i in range(500)]
    planner = ShardPlanner(prefix="x", max_samples=40, max_bytes=30_000)
    streamed, sizes = [], []
    for row in rows:
        for shard in planner.add(row):
            streamed.append(shard)
    streamed += list(planner.finish())
    assert [s.name for s in streamed][:2] == ["x-000000.tar", "x-000001.tar"]
    assert sum(len(s.entries) for s in streamed) == 500 and all(len(s.entries) <= 40 for s in streamed)
    for s in streamed:  # rotated by size too: a shard takes the next entry only while it fits
        assert s.nbytes <= 30_000 or len(s.entries) == 1
        sizes.append(s.nbytes)
    assert [(s.name, [e["key"] for e in s.entries]) for s in streamed] == [
        (s.name, [e["key"] for e in s.entries]) for s in plan_shards(rows, prefix="x", max_samples=40, max_bytes=30_000)
    ]
    planner = ShardPlanner(prefix="x", max_samples=4, max_bytes=10)
    with pytest.raises(ValueError, match="sorted by key"):
        [s for row in ({"key": "b", "nbytes": 1}, {"key": "a", "nbytes": 1}) for s in planner.add(row)]
