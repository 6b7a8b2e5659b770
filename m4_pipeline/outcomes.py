"""Outcome tables and the decisions taken on them once every sample is built.

Each work unit writes one parquet file next to its staging fragment: one row per record, with
its status (``ok`` or ``quarantined`` and the reason), its exact fingerprint, the members it
staged, and — when the recipe deduplicates or decontaminates — its dedup signature, the compact
search keys of that signature (:mod:`.dedup.candidates`) and its benchmark hits. The driver never
holds these rows: the stages below read the files column by column, batch by batch.

- :func:`exact_duplicates`: fingerprint runs of a table sorted by fingerprint (its blocks hold
  whole runs) → the removal of every member but the one with the smallest key.
- :class:`FinalPass`: the valid rows and the removal decisions, sorted by key, in; the status of
  every valid row, the shard plans (streaming, one shard in memory), the duplicates report, the
  dedup provenance of kept samples and per-source counts out.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .writer import ShardPlan, ShardPlanner

SCHEMA = pa.schema([
    ("key", pa.string()), ("source", pa.string()), ("rank", pa.int32()), ("ordinal", pa.int64()),
    ("source_file", pa.string()), ("locator", pa.string()), ("status", pa.string()), ("reason", pa.string()),
    ("detail", pa.string()), ("fingerprint", pa.string()), ("content", pa.string()), ("nbytes", pa.int64()),
    ("members", pa.list_(pa.string())), ("fragment", pa.string()), ("pixels", pa.int64()),
    ("signature", pa.string()), ("media_reps", pa.list_(pa.uint64())), ("text_bands", pa.list_(pa.uint64())),
    ("contam", pa.string()),
])  # fmt: skip
REMOVAL = pa.schema([
    ("key", pa.string()), ("rank", pa.int32()), ("ordinal", pa.int64()), ("duplicate_of", pa.string()),
    ("reason", pa.string()), ("fingerprint", pa.string()), ("source", pa.string()), ("locator", pa.string()),
])  # fmt: skip
LIVE_COLUMNS = ["key", "source", "rank", "ordinal", "locator", "fingerprint", "content", "nbytes", "members",
                "fragment", "contam"]  # fmt: skip


def outcome_path(staging: Path, unit_id: str) -> Path:
    return staging / f"{unit_id}.parquet"


def write_outcomes(path: Path, rows: list[dict]) -> None:
    """The unit's rows as parquet, atomically (a temporary name of its own, then a rename)."""
    table = pa.Table.from_pylist([{f.name: r.get(f.name) for f in SCHEMA} for r in rows], schema=SCHEMA)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def read_outcomes(paths: Iterable[Path], columns: list[str] | None, *, status: str | None = None) -> pa.Table:
    """Some columns (None: all) of parquet rows (only those with ``status`` when given), in file order."""
    tables = []
    for p in paths:
        wanted = None if columns is None else list(dict.fromkeys([*columns, *(["status"] if status else [])]))
        t = pq.read_table(p, columns=wanted)
        if status is not None:
            t = t.filter(pc.equal(t["status"], status))
        tables.append(t if columns is None else t.select(columns))
    if not tables:
        return pa.table({c: pa.array([], SCHEMA.field(c).type) for c in columns or []})
    return pa.concat_tables(tables)


def iter_outcome_rows(paths: Iterable[Path], columns: list[str], *, status: str | None = None) -> Iterator[dict]:
    """The rows of the units, file by file (never more than one unit's rows in memory)."""
    for p in paths:
        yield from read_outcomes([p], columns, status=status).to_pylist()


# --- exact duplicates --------------------------------------------------------------------------

EXACT_COLUMNS = ["key", "rank", "ordinal", "fingerprint", "source", "locator"]


def exact_duplicates(table: pa.Table) -> pa.Table:
    """Removal rows for the repeats of each fingerprint in ``table`` (which holds every row of
    the fingerprints it has): within a fingerprint, the smallest key (then rank, ordinal) stays."""
    t = table.sort_by([("fingerprint", "ascending"), ("key", "ascending"), ("rank", "ascending"),
                       ("ordinal", "ascending")])  # fmt: skip
    fps = t["fingerprint"].to_pylist()
    keys = t["key"].to_pylist()
    keep_rows, dup_of = [], []
    first = None
    for i, fp in enumerate(fps):
        if i and fp == fps[i - 1]:
            keep_rows.append(i)
            dup_of.append(keys[first])
        else:
            first = i
    picked = t.take(pa.array(keep_rows, pa.int64()))
    return pa.table({
        "key": picked["key"], "rank": picked["rank"], "ordinal": picked["ordinal"],
        "duplicate_of": pa.array(dup_of, pa.string()), "reason": pa.array(["exact_duplicate"] * len(dup_of)),
        "fingerprint": picked["fingerprint"], "source": picked["source"], "locator": picked["locator"],
    }, schema=REMOVAL)  # fmt: skip


def removal_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist([{f.name: r.get(f.name) for f in REMOVAL} for r in rows], schema=REMOVAL)


# --- the final pass ------------------------------------------------------------------------------


FINAL_COLUMNS = ["key", "kind", "rank", "ordinal", "source", "locator", "fingerprint", "content", "nbytes",
                 "members", "fragment", "contam", "duplicate_of", "reason"]  # fmt: skip


def as_final(batch, kind: int):
    """Outcome rows (kind 0) or removal rows (kind 1) in the final pass's common columns."""
    import pyarrow as pa

    n = batch.num_rows
    cols = {}
    for name in FINAL_COLUMNS:
        if name == "kind":
            cols[name] = pa.array([kind] * n, pa.int8())
        elif name in batch.column_names:
            cols[name] = batch[name]
        else:
            typ = {"nbytes": pa.int64(), "members": pa.list_(pa.string())}.get(name, pa.string())
            cols[name] = pa.nulls(n, typ)
    return pa.table(cols)


class FinalPass:
    """Statuses, shard plans and reports from one pass over the key-sorted rows.

    Feed :meth:`rows` with the valid outcome rows (``kind`` 0) and the removal decisions (exact and
    near duplicates, ``kind`` 1), sorted by ``(key, kind, rank, ordinal)``; ``absorbed`` yields
    the removal rows sorted by ``(duplicate_of, key)`` (merged in step to give each kept sample
    its dedup provenance). A valid row is then a ``duplicate`` (a removal names it),
    ``contaminated`` (it has benchmark hits), a ``duplicate_key`` collision (another row of the
    same key came first) or written; written rows go to the :class:`~.writer.ShardPlanner`."""

    def __init__(self, *, prefix: str, max_samples: int, max_bytes: int, on_shard: Callable[[ShardPlan], None],
                 on_duplicate: Callable[[dict], None], absorbed: Iterator[dict]):  # fmt: skip
        self.planner = ShardPlanner(prefix=prefix, max_samples=max_samples, max_bytes=max_bytes)
        self.on_shard, self.on_duplicate = on_shard, on_duplicate
        self.absorbed = _Peek(absorbed)
        self.counts: dict[str, dict] = defaultdict(lambda: {"written": 0, "duplicates": 0, "decontaminated": 0})
        self.collisions: list[dict] = []  # quarantine rows (duplicate_key), few
        self.contamination: list[dict] = []  # benchmark hits of the samples removed for them
        self._group: list[dict] = []

    def rows(self, rows: Iterable[dict]) -> None:
        for row in rows:
            if self._group and row["key"] != self._group[0]["key"]:
                self._resolve(self._group)
                self._group = []
            self._group.append(row)

    def close(self) -> None:
        if self._group:
            self._resolve(self._group)
            self._group = []
        for shard in self.planner.finish():
            self.on_shard(shard)

    def _resolve(self, group: list[dict]) -> None:
        removals = {(r["rank"], r["ordinal"]): r for r in group if r["kind"] == 1}
        kept = None
        for row in (r for r in group if r["kind"] == 0):
            counts = self.counts[row["source"]]
            removal = removals.get((row["rank"], row["ordinal"]))
            if removal is not None:
                counts["duplicates"] += 1
                self.on_duplicate({"key": row["key"], "duplicate_of": removal["duplicate_of"],
                                   "reason": removal["reason"], "fingerprint": row["fingerprint"],
                                   "source": row["source"], "locator": row["locator"]})  # fmt: skip
            elif row.get("contam"):
                counts["decontaminated"] += 1
                self.contamination += json.loads(row["contam"])
            elif kept is not None:
                self.collisions.append({"source": row["source"], "rank": row["rank"], "ordinal": row["ordinal"],
                                        "key": row["key"], "locator": row["locator"], "reason": "duplicate_key",
                                        "detail": f"key {row['key']} already used by {kept['source']} "
                                                  f"{kept['locator']}"})  # fmt: skip
            else:
                kept = row
                counts["written"] += 1
                entry = {k: row[k] for k in ("key", "source", "fragment", "members", "nbytes", "content")}
                entry["dedup"] = self._dedup_of(row["key"])
                for shard in self.planner.add(entry):
                    self.on_shard(shard)

    def _dedup_of(self, key: str) -> dict | None:
        """The removed samples that name ``key`` as kept (the absorbed stream, merged in order)."""
        while (nxt := self.absorbed.peek()) is not None and nxt["duplicate_of"] < key:
            next(self.absorbed)  # absorbed by a row that was itself removed: no provenance to attach
        removed = []
        cluster = ""
        while (nxt := self.absorbed.peek()) is not None and nxt["duplicate_of"] == key:
            r = next(self.absorbed)
            cluster = cluster or (r["fingerprint"] or "")[:16]
            removed.append({"key": r["key"], "reason": r["reason"]})
        return {"cluster": cluster, "removed": removed} if removed else None


class _Peek:
    def __init__(self, it: Iterator[dict]):
        self.it, self.buf = iter(it), None

    def peek(self) -> dict | None:
        if self.buf is None:
            self.buf = next(self.it, None)
        return self.buf

    def __next__(self) -> dict:
        value = self.peek()
        if value is None:
            raise StopIteration
        self.buf = None
        return value

    def __iter__(self):
        return self


def sorted_rows(table: pa.Table, keys: list[str]) -> Iterator[dict]:
    """The rows of an in-memory table in sort order (the small-build path of a sort stage)."""
    t = table.sort_by([(k, "ascending") for k in keys])
    for batch in t.to_batches(max_chunksize=4096):
        yield from batch.to_pylist()


# --- near duplicates over the outcome files ------------------------------------------------------

NEAR_COLUMNS = ["key", "status", "rank", "ordinal", "pixels", "media_reps", "text_bands", "contam", "source",
                "locator", "fingerprint"]  # fmt: skip


def near_stage(files: list[Path], removal_files: list[Path], config) -> tuple[list[dict], list[dict]]:
    """Near-duplicate clusters among the live samples (valid, not an exact duplicate, not
    contaminated) of the outcome files, and one removal row per removed sample.

    Holds compact arrays of the live samples (keys and search keys, about 100 bytes each) and the
    signatures of candidate pairs only: it runs in one worker, never on the driver."""
    from .dedup.candidates import LiveArrays, near_duplicate_clusters
    from .dedup.signature import SampleSignature

    removed = set()
    for f in removal_files:
        t = pq.read_table(f, columns=["rank", "ordinal"])
        removed.update(zip(t["rank"].to_pylist(), t["ordinal"].to_pylist()))
    rows, where = [], []
    for fi, f in enumerate(files):
        for ri, r in enumerate(pq.read_table(f, columns=NEAR_COLUMNS).to_pylist()):
            if r["status"] != "ok" or r["contam"] or (r["rank"], r["ordinal"]) in removed:
                continue
            if r["media_reps"] or r["text_bands"] or config.text_level == "turn":
                rows.append((r["key"], r["pixels"] or 0, r["media_reps"] or [], r["text_bands"] or []))
                where.append((fi, ri, r))
    cache: dict[int, list] = {}

    def signature(i: int) -> SampleSignature:
        fi, ri, _ = where[i]
        if fi not in cache:
            cache.clear()  # candidates come in row order: one file's signatures at a time, mostly
            cache[fi] = pq.read_table(files[fi], columns=["signature"])["signature"].to_pylist()
        return SampleSignature.from_row(json.loads(cache[fi][ri]))

    if config.text_level == "turn":  # aligned-turn matching has no compact keys: compare signatures
        from .dedup.near import find_near_duplicates

        clusters = find_near_duplicates([signature(i) for i in range(len(where))], config).rows
    else:
        clusters = near_duplicate_clusters(LiveArrays.build(rows), config, signature)
    by_key = {where[i][2]["key"]: where[i][2] for i in range(len(where))}
    removals = []
    for c in clusters:
        for key in c["removed"]:
            r = by_key[key]
            removals.append({"key": key, "rank": r["rank"], "ordinal": r["ordinal"], "duplicate_of": c["kept"],
                             "reason": c["reason"], "fingerprint": r["fingerprint"], "source": r["source"],
                             "locator": r["locator"]})  # fmt: skip
    return clusters, removals
