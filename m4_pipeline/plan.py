"""Streaming planning: the driver lists annotation parts, never records.

1. **Survey** (one task per part): how many records the part holds and, for ``random:N``
   sampling, a histogram of their sampling hashes (a seeded hash of the sample key).
2. **Selection** (driver, from those small counts): each source's rule — all records; the first
   N (by listing position); or N at random: the records whose ``(hash, key)`` is at most the N-th
   smallest, found from the histograms and the candidates of the one bucket that straddles N.
   Exact, deterministic, and independent of how the work is split.
3. **Units** (one task per part): walk the part again and cut a work unit every
   ``records_per_unit`` selected records. A unit says where its listing starts (a part that
   resumes at its first record's item, from :attr:`RawRecord.resume`, or the part and a count
   of records to skip), how many records to walk, and the source ordinal of its first record.
   The unit's task then reads its own records and nothing else.

Unit ids depend on (source, part, chunk) only, so a resumed build finds the same units.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from itertools import islice

from .adapters import RawRecord
from .readers import Part
from .recipe import Sampling

HASH_BITS = 12  # histogram buckets: 4096; the straddling bucket holds about total/4096 candidates


def sampling_hash(seed: int, key: str) -> int:
    """A 63-bit hash of the sample key, seeded: random:N keeps the N smallest."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8, key=str(seed).encode()).digest()
    return int.from_bytes(digest, "big") >> 1


def _bucket(h: int) -> int:
    return h >> (63 - HASH_BITS)


@dataclass(frozen=True)
class Rule:
    """Which records of a source are selected."""

    mode: str = "all"  # all | first | random
    limit: int = 0  # first: records taken from the source
    seed: int = 0
    hash_max: int = -1  # random: (hash, key) <= (hash_max, key_max) is selected
    key_max: str = ""

    def selects(self, ordinal: int, key: str) -> bool:
        if self.mode == "all":
            return True
        if self.mode == "first":
            return ordinal < self.limit
        return (sampling_hash(self.seed, key), key) <= (self.hash_max, self.key_max)

    def to_dict(self) -> dict:
        return asdict(self)


def survey_part(adapter, part: Part, sampling: Sampling) -> dict:
    """Records in a part and, for random sampling, the non-empty buckets of their hashes."""
    n, hist = 0, {}
    for record in adapter.records(part):
        n += 1
        if sampling.mode == "random":
            b = _bucket(sampling_hash(sampling.seed, adapter.key_for(record)))
            hist[b] = hist.get(b, 0) + 1
    return {"records": n, "hist": sorted(hist.items())}


def bucket_candidates(adapter, part: Part, sampling: Sampling, bucket: int) -> list[tuple[int, str]]:
    """(hash, key) of the part's records in one bucket: the candidates that straddle N."""
    out = []
    for record in adapter.records(part):
        key = adapter.key_for(record)
        h = sampling_hash(sampling.seed, key)
        if _bucket(h) == bucket:
            out.append((h, key))
    return out


def choose_rule(sampling: Sampling, surveys: list[dict], candidates=None) -> tuple[Rule, int | None]:
    """The selection rule of a source from its parts' surveys.

    For ``random:N`` below the total, returns ``(None, bucket)`` first: the caller gathers that
    bucket's candidates with :func:`bucket_candidates` and calls again with ``candidates``."""
    total = sum(s["records"] for s in surveys)
    if sampling.mode == "all" or sampling.n >= total:
        return Rule("all"), None
    if sampling.mode == "first":
        return Rule("first", limit=sampling.n), None
    counts: dict[int, int] = {}
    for s in surveys:
        for b, c in s["hist"]:
            counts[b] = counts.get(b, 0) + c
    below = 0
    for b in sorted(counts):
        if below + counts[b] >= sampling.n:
            if candidates is None:
                return None, b  # type: ignore[return-value]
            chosen = sorted(candidates)[sampling.n - below - 1]
            return Rule("random", seed=sampling.seed, hash_max=chosen[0], key_max=chosen[1]), None
        below += counts[b]
    raise AssertionError("unreachable: n < total")


@dataclass
class Unit:
    """A run of selected records of one source, read from ``start`` (a part) after ``skip``
    records; ``walk`` records are read, of which ``count`` are selected."""

    unit_id: str
    source: str
    start: list  # Part.to_list()
    skip: int
    walk: int
    count: int
    first_ordinal: int  # source ordinal of the first record walked
    rule: dict

    def to_row(self) -> dict:
        """A row of flat columns (``start`` and ``rule`` as JSON text: a part's list mixes types,
        which a columnar block would otherwise pickle)."""
        return {**asdict(self), "start": json.dumps(self.start), "rule": json.dumps(self.rule, sort_keys=True)}


def plan_part_units(adapter, source: str, part_index: int, part: Part, base_ordinal: int, rule: Rule,
                    per_unit: int) -> Iterator[Unit]:  # fmt: skip
    """The units of one part: a new unit every ``per_unit`` selected records."""
    unit = None
    kept = 0
    for pos, record in enumerate(adapter.records(part)):
        ordinal = base_ordinal + pos
        if not rule.selects(ordinal, adapter.key_for(record)):
            continue
        if kept % per_unit == 0:
            if unit is not None:
                yield unit
            start, skip = (Part.from_list(record.resume[0]), record.resume[1]) if record.resume else (part, pos)
            unit = Unit(f"{source}-{part_index:05d}-{kept // per_unit:05d}", source, start.to_list(), skip, 0, 0,
                        ordinal, rule.to_dict())  # fmt: skip
            unit_pos = pos
        unit.walk = pos - unit_pos + 1
        unit.count += 1
        kept += 1
    if unit is not None:
        yield unit


def unit_records(adapter, unit: dict) -> Iterator[tuple[int, RawRecord]]:
    """(source ordinal, record) of the selected records of a unit, read from its start."""
    rule = Rule(**json.loads(unit["rule"]))
    start = Part.from_list(json.loads(unit["start"]))
    walked = islice(adapter.records(start), unit["skip"], unit["skip"] + unit["walk"])
    for k, record in enumerate(walked):
        ordinal = unit["first_ordinal"] + k
        if rule.selects(ordinal, adapter.key_for(record)):
            yield ordinal, record
