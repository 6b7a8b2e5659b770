"""Mergeable dataset statistics: what the shards hold, counted so that per-shard results add up exactly.

A :class:`Stats` is filled with :meth:`Stats.add` one sample at a time and combined with
:meth:`Stats.merge`, which is associative and commutative (integer counters and fixed-bin
:class:`~.hist.Histogram` s only). That is the contract a map-reduce needs: compute one per shard
on a worker, ship ``to_dict()`` to the driver, ``from_dict`` and merge there. No Ray here.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..coords import ST_VARIABLES
from ..inspect_shards import iter_samples, shard_paths
from ..sample import Sample
from . import text as tx
from .hist import Histogram, int_edges, step_edges
from .runlog import RunSummary, read_run_logs
from .targets import UNMAPPED, Targets, load_targets

log = logging.getLogger(__name__)

SCHEMA = "m4-audit-stats/1"
DOMAIN_OF_KIND = {"image": "multi-image", "frame": "video", "clip": "video", "video": "video", "view": "3D",
                  "patch": "single-image"}  # fmt: skip
_UNIT = step_edges(0.0, 1.0, 0.05)
_CHARS = (0, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
_PIXELS = step_edges(0, 4096, 128)
_ASPECT = (0.25, 0.33, 0.5, 0.67, 0.8, 0.95, 1.05, 1.25, 1.5, 2.0, 3.0, 4.0)
# name -> (edges, scale). Changing a spec changes the schema: stats from before cannot merge.
HISTOGRAMS: dict[str, tuple[tuple[float, ...], int]] = {
    "images_per_sample": (int_edges(64), 1),
    "frames_per_video": (int_edges(128), 1),
    "views_per_3d_sample": (int_edges(32), 1),
    "patches_per_sample": (int_edges(32), 1),
    "placeholders_per_sample": (int_edges(64), 1),
    "turns_per_conversation": (int_edges(64), 1),
    "text_chars": (_CHARS, 1),
    "text_tokens": (_CHARS, 1),
    "image_width": (_PIXELS, 1),
    "image_height": (_PIXELS, 1),
    "aspect_ratio": (_ASPECT, 1000),
    "st_span_length": (_UNIT, 1000),
    "st_boxes_per_tube": (int_edges(128), 1),
    **{f"st_{name}": (_UNIT, 1000) for name in ST_VARIABLES.values()},
}
GROUP_FIELDS = ("family", "domain", "stage", "task", "dataset")
_PER_DATASET = ("samples", "media", "turns", "text_chars", "text_tokens", "media_bytes")


class StatsMergeError(ValueError):
    """Statistics computed with different settings (tokenizer, schema) cannot be added."""


def _new_hists() -> dict[str, Histogram]:
    return {name: Histogram(edges, scale) for name, (edges, scale) in HISTOGRAMS.items()}


def sample_dataset(sample: Sample) -> str:
    """``metadata.dataset`` for M4 records, else the provenance (recipe source) name."""
    meta = sample.record.get("metadata")
    if sample.family == "m4" and isinstance(meta, dict) and meta.get("dataset"):
        return str(meta["dataset"])
    return sample.provenance.dataset if sample.provenance else "?"


def sample_domain(sample: Sample) -> str:
    """From the media kinds (image→multi-image, frame→video, view→3D, patch→single-image); ST apart."""
    if sample.family == "st":
        frames = any(m.kind in ("frame", "clip", "video") for m in sample.media) or "video" in sample.record
        return "st-video" if frames else "st-image"
    kinds = Counter(m.kind for m in sample.media)
    if kinds:
        kind = max(kinds, key=lambda k: kinds[k])  # a slot never mixes kinds; ties: first seen
        return DOMAIN_OF_KIND.get(kind, kind)
    return "video" if "video" in sample.record else "text-only"


def sample_group(sample: Sample, targets: Targets | None) -> tuple[str, str, str, str, str]:
    """(family, domain, stage, task, dataset) — the key every count is kept under."""
    dataset = sample_dataset(sample)
    domain = sample_domain(sample)
    if sample.family == "m4":
        row = targets.m4_row(dataset) if targets else None
        return "m4", domain, "-", row.task if row else UNMAPPED, dataset
    key = str(sample.record.get("type") or dataset)
    row = (targets.st_row(key) or (targets.st_row(dataset) if key != dataset else None)) if targets else None
    if row is None:
        return "st", domain, "?", key, dataset
    return "st", domain, str(row.stage), f"{row.task} ({row.code})", dataset


@dataclass
class Stats:
    """The audit's counts and histograms. Compare with ``==``: config fields are not part of equality."""

    tokenizer: str = tx.APPROX_TOKENIZER
    samples: int = 0
    unreadable: int = 0
    groups: Counter = field(default_factory=Counter)  # (family, domain, stage, task, dataset) -> samples
    question_types: Counter = field(default_factory=Counter)
    placement: Counter = field(default_factory=Counter)
    media_kinds: Counter = field(default_factory=Counter)
    per_dataset: dict[str, Counter] = field(default_factory=dict)
    hists: dict[str, Histogram] = field(default_factory=_new_hists)
    run: RunSummary | None = None
    # configuration, not data
    targets: Targets | None = field(default=None, compare=False, repr=False)
    count_tokens: tx.TokenCounter = field(default=tx.approx_token_count, compare=False, repr=False)

    # --- accumulate ---------------------------------------------------------------------------
    def add(self, sample: Sample) -> None:
        group = sample_group(sample, self.targets)
        self.samples += 1
        self.groups[group] += 1
        family, _, _, _, dataset = group
        meta = sample.record.get("metadata")
        qtype = meta.get("question_type") if isinstance(meta, dict) else None
        self.question_types[str(qtype) if qtype else f"unspecified ({family})"] += 1
        self.placement[tx.placeholder_placement(sample)] += 1
        kinds = Counter(m.kind for m in sample.media)
        self.media_kinds.update(kinds)
        h = self.hists
        if kinds["image"]:
            h["images_per_sample"].add(kinds["image"])
        video_frames = kinds["frame"] + sum(len(m.frames or []) for m in sample.media if m.kind in ("clip", "video"))
        if video_frames:
            h["frames_per_video"].add(video_frames)
        if kinds["view"]:
            h["views_per_3d_sample"].add(kinds["view"])
        if kinds["patch"]:
            h["patches_per_sample"].add(kinds["patch"])
        h["placeholders_per_sample"].add(sum(len(tx.PLACEHOLDER.findall(t.value)) for t in sample.conversations))
        h["turns_per_conversation"].add(len(sample.conversations))
        text = sample.text()
        chars, tokens = len(text), int(self.count_tokens(text))
        h["text_chars"].add(chars)
        h["text_tokens"].add(tokens)
        for m in sample.media:
            if m.size and len(m.size) == 2 and m.size[0] > 0 and m.size[1] > 0:
                h["image_width"].add(m.size[0])
                h["image_height"].add(m.size[1])
                h["aspect_ratio"].add(round(m.size[0] / m.size[1], 3))
        if family == "st":
            self._add_st(sample)
        per = self.per_dataset.setdefault(dataset, Counter())
        per.update(
            samples=1,
            media=len(sample.media),
            turns=len(sample.conversations),
            text_chars=chars,
            text_tokens=tokens,
            media_bytes=sum(len(m.data) for m in sample.media),
        )

    def _add_st(self, sample: Sample) -> None:
        variables = sample.record.get("variables") or {}
        for name in ST_VARIABLES.values():
            for v in variables.get(name) or []:
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    self.hists[f"st_{name}"].add(float(v))
        tokens = tx.coord_tokens(sample)
        for length in tx.span_lengths(sample, tokens):
            self.hists["st_span_length"].add(length)
        for n in tx.boxes_per_tube(sample):
            self.hists["st_boxes_per_tube"].add(n)

    def add_unreadable(self, count: int = 1) -> None:
        self.unreadable += count

    # --- combine ------------------------------------------------------------------------------
    def merge(self, other: Stats) -> Stats:
        """A new Stats holding both; associative and commutative, so any reduction order gives the same."""
        if self.tokenizer != other.tokenizer:
            raise StatsMergeError(f"token counts differ in tokenizer: {self.tokenizer!r} vs {other.tokenizer!r}")
        if set(self.hists) != set(other.hists):
            raise StatsMergeError("histogram sets differ (statistics from another schema version)")
        per = {k: Counter(v) for k, v in self.per_dataset.items()}
        for k, v in other.per_dataset.items():
            per.setdefault(k, Counter()).update(v)
        if self.run is None or other.run is None:
            run = self.run or other.run
        else:
            run = self.run.merge(other.run)
        return Stats(
            tokenizer=self.tokenizer,
            samples=self.samples + other.samples,
            unreadable=self.unreadable + other.unreadable,
            groups=self.groups + other.groups,
            question_types=self.question_types + other.question_types,
            placement=self.placement + other.placement,
            media_kinds=self.media_kinds + other.media_kinds,
            per_dataset=per,
            hists={k: self.hists[k].merge(other.hists[k]) for k in self.hists},
            run=run,
            targets=self.targets or other.targets,
            count_tokens=self.count_tokens,
        )

    __add__ = merge

    # --- views --------------------------------------------------------------------------------
    def by(self, what: str) -> dict[str, int]:
        """Samples per family / domain / stage / task / dataset, largest first."""
        if what not in GROUP_FIELDS:
            raise KeyError(f"unknown grouping {what!r}; expected one of {GROUP_FIELDS}")
        i = GROUP_FIELDS.index(what)
        c: Counter = Counter()
        for key, n in self.groups.items():
            c[key[i]] += n
        return dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; ``from_dict(to_dict())`` round-trips (the derived ``by_*`` views are recomputed)."""
        per_dataset = {}
        for name, c in sorted(self.per_dataset.items()):
            n = c["samples"] or 1
            row = {k: c[k] for k in _PER_DATASET}
            row.update({f"{k}_per_sample": round(c[k] / n, 2) for k in ("media", "turns", "text_chars", "text_tokens")})
            per_dataset[name] = row
        return {
            "schema": SCHEMA,
            "tokenizer": self.tokenizer,
            "samples": self.samples,
            "unreadable": self.unreadable,
            **{f"by_{g}": self.by(g) for g in GROUP_FIELDS},
            "groups": [dict(zip(GROUP_FIELDS, k), samples=n) for k, n in sorted(self.groups.items())],
            "question_types": dict(sorted(self.question_types.items())),
            "placement": dict(sorted(self.placement.items())),
            "media_kinds": dict(sorted(self.media_kinds.items())),
            "per_dataset": per_dataset,
            "histograms": {k: v.to_dict() for k, v in self.hists.items()},
            "run": self.run.to_dict() if self.run else None,
        }

    @classmethod
    def from_dict(
        cls, d: dict[str, Any], *, targets: Targets | None = None, count_tokens: tx.TokenCounter | None = None
    ) -> Stats:
        if d.get("schema") != SCHEMA:
            raise StatsMergeError(f"statistics schema {d.get('schema')!r}, expected {SCHEMA!r}")
        hists = _new_hists()
        hists.update({k: Histogram.from_dict(v) for k, v in d["histograms"].items()})
        return cls(
            tokenizer=d["tokenizer"],
            samples=int(d["samples"]),
            unreadable=int(d["unreadable"]),
            groups=Counter({tuple(str(r[f]) for f in GROUP_FIELDS): int(r["samples"]) for r in d["groups"]}),
            question_types=Counter(d["question_types"]),
            placement=Counter(d["placement"]),
            media_kinds=Counter(d["media_kinds"]),
            per_dataset={k: Counter({f: int(v[f]) for f in _PER_DATASET}) for k, v in d["per_dataset"].items()},
            hists=hists,
            run=RunSummary.from_dict(d["run"]) if d.get("run") else None,
            targets=targets,
            count_tokens=count_tokens or tx.approx_token_count,
        )


def new_stats(
    *, targets: Targets | None = None, count_tokens: tx.TokenCounter | None = None, tokenizer_name: str | None = None
) -> Stats:
    """An empty accumulator. Pass ``count_tokens`` with a ``tokenizer_name`` (e.g. "Qwen2 (llava-interleave)")."""
    if count_tokens is not None and not tokenizer_name:
        tokenizer_name = getattr(count_tokens, "__qualname__", repr(count_tokens))
    return Stats(
        tokenizer=tokenizer_name if count_tokens is not None else tx.APPROX_TOKENIZER,
        targets=targets,
        count_tokens=count_tokens or tx.approx_token_count,
    )


def stats_for_samples(samples: Iterable[Sample | None], **kwargs: Any) -> Stats:
    """Statistics of the given samples (None counts as unreadable); kwargs as :func:`new_stats`."""
    stats = new_stats(**kwargs)
    for sample in samples:
        if sample is None:
            stats.add_unreadable()
        else:
            stats.add(sample)
    return stats


def compute_stats(
    path: str | Path | list[Path],
    *,
    targets: Targets | None = None,
    count_tokens: tx.TokenCounter | None = None,
    tokenizer_name: str | None = None,
    with_run_logs: bool = True,
) -> Stats:
    """Statistics over a folder of shards, one shard, or a list of shards (one Ray task per shard works too).

    ``targets`` default to the manifests in ``manifests/`` (they name the tasks). The run logs are
    folded in when ``path`` is a folder that holds them.
    """
    if targets is None:
        targets = load_targets()
    paths = path if isinstance(path, list) else shard_paths(path)
    stats = stats_for_samples(
        (sample for _, sample, _ in iter_samples(paths)),
        targets=targets,
        count_tokens=count_tokens,
        tokenizer_name=tokenizer_name,
    )
    if with_run_logs and not isinstance(path, list) and Path(path).is_dir():
        stats = fold_run_logs(stats, path)
    log.info("stats: %d samples, %d unreadable from %d shard(s)", stats.samples, stats.unreadable, len(paths))
    return stats


def fold_run_logs(stats: Stats, shards_dir: str | Path) -> Stats:
    """Stats with the run's manifest / quarantine / duplicates counts (by reason) folded in, when present."""
    summary = read_run_logs(shards_dir)
    if summary is None:
        return stats
    written = summary.totals.get("written")
    if written is not None and written != stats.samples:
        log.warning("manifest.json says %d written, the shards hold %d samples", written, stats.samples)
    return stats.merge(Stats(tokenizer=stats.tokenizer, run=summary))
