"""The decisions taken once every sample is built, as plain functions over small groups of rows.

The executor feeds them from its group-by and sort stages (one group, one batch at a time), so
no step ever needs every row in memory:

- :func:`resolve_key_group`: rows sharing a **key** — the first by (source rank, ordinal) is
  kept; a later row with the same content (exact fingerprint) is its ``exact_duplicate``, one
  with other content a ``duplicate_key`` collision (quarantined: two records claim one key).
- :func:`resolve_fingerprint_group`: surviving rows sharing an **exact fingerprint** (text and
  media) — the smallest key is kept, the others are its ``exact_duplicate``.
- :class:`ShardPlanner`: key-sorted kept rows (with the duplicates each one absorbed) in, shard
  plans out, rotated by count and size, one shard in memory at a time.

Row fields: ``key``, ``source``, ``rank`` (the source's position in the recipe), ``ordinal``,
``fingerprint``, ``status``, ``reason``, ``detail``, ``duplicate_of``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field


def _order(row: dict) -> tuple:
    return (row["rank"], row["ordinal"])


def resolve_key_group(rows: list[dict]) -> list[dict]:
    """One key's rows: keep the first listed; the rest are exact repeats or key collisions."""
    rows = sorted(rows, key=_order)
    kept = rows[0]
    for row in rows[1:]:
        if row["fingerprint"] == kept["fingerprint"]:
            row.update(status="duplicate", reason="exact_duplicate", duplicate_of=kept["key"])
        else:
            where = f"{kept['source']} {kept.get('locator', '')}".strip()
            row.update(status="quarantined", reason="duplicate_key", duplicate_of="",
                       detail=f"key {kept['key']} already used by {where}")  # fmt: skip
    return rows


def resolve_fingerprint_group(rows: list[dict]) -> list[dict]:
    """One exact fingerprint's surviving rows: the smallest key is kept."""
    rows = sorted(rows, key=lambda r: (r["key"], *_order(r)))
    for row in rows[1:]:
        row.update(status="duplicate", reason="exact_duplicate", duplicate_of=rows[0]["key"])
    return rows


@dataclass
class PlannedShard:
    index: int
    name: str
    entries: list[dict] = field(default_factory=list)
    nbytes: int = 0


class ShardPlanner:
    """Cut key-sorted rows into shards of at most ``max_samples`` samples and about
    ``max_bytes`` bytes (one sample larger than the limit gets a shard of its own), streaming:
    :meth:`add` yields each shard as soon as it is complete, :meth:`finish` the last one."""

    def __init__(self, *, prefix: str, max_samples: int, max_bytes: int):
        self.prefix, self.max_samples, self.max_bytes = prefix, max_samples, max_bytes
        self.current: PlannedShard | None = None
        self.count = 0
        self._last_key: str | None = None

    def add(self, row: dict) -> Iterator[PlannedShard]:
        if self._last_key is not None and row["key"] <= self._last_key:
            raise ValueError(f"rows must come sorted by key: {row['key']!r} after {self._last_key!r}")
        self._last_key = row["key"]
        cur = self.current
        full = cur is not None and (
            len(cur.entries) >= self.max_samples or (cur.entries and cur.nbytes + row["nbytes"] > self.max_bytes)
        )
        if cur is None or full:
            if cur is not None:
                yield cur
            self.current = cur = PlannedShard(self.count, f"{self.prefix}-{self.count:06d}.tar")
            self.count += 1
        cur.entries.append(row)
        cur.nbytes += row["nbytes"]

    def add_all(self, rows: Iterable[dict]) -> Iterator[PlannedShard]:
        for row in rows:
            yield from self.add(row)

    def finish(self) -> Iterator[PlannedShard]:
        if self.current is not None:
            yield self.current
            self.current = None
