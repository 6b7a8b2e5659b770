"""Writing statistics to disk: JSON (the full object) or Parquet (one long table, easy to query).

The Parquet form is long ("tidy"): one row per counter entry or histogram bin, so a notebook can
filter and pivot it without knowing the nesting of the JSON.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..writer import write_atomic
from .stats import GROUP_FIELDS, Stats

log = logging.getLogger(__name__)

COLUMNS = ("section", "name", "key", "low", "high", "value")


class StatsFormatError(ValueError):
    """An output path whose format is not supported."""


def stats_rows(stats: Stats) -> Iterator[dict[str, Any]]:
    """The statistics as long rows: (section, name, key, low, high, value)."""

    def row(section: str, name: str, key: str = "", low=None, high=None, value: float = 0) -> dict[str, Any]:
        return {"section": section, "name": name, "key": key, "low": low, "high": high, "value": float(value)}

    yield row("total", "samples", value=stats.samples)
    yield row("total", "unreadable", value=stats.unreadable)
    for group, n in sorted(stats.groups.items()):
        yield row("group", "samples", "|".join(f"{f}={v}" for f, v in zip(GROUP_FIELDS, group)), value=n)
    for name in ("question_types", "placement", "media_kinds"):
        for key, n in sorted(getattr(stats, name).items()):
            yield row("counter", name, key, value=n)
    for dataset, c in sorted(stats.per_dataset.items()):
        for key, n in sorted(c.items()):
            yield row("per_dataset", key, dataset, value=n)
    for name, h in stats.hists.items():
        for low, high, n in h.bins():
            yield row("histogram", name, "", low, high, n)
    if stats.run:
        for key, n in sorted(stats.run.totals.items()):
            yield row("run", "totals", key, value=n)
        for key, n in sorted(stats.run.quarantined_by_reason.items()):
            yield row("run", "quarantined_by_reason", key, value=n)
        for key, n in sorted(stats.run.duplicates_by_reason.items()):
            yield row("run", "duplicates_by_reason", key, value=n)


def write_stats(stats: Stats, path: str | Path) -> Path:
    """Write ``.json`` (``Stats.to_dict``) or ``.parquet`` (:func:`stats_rows`) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".json":
        write_atomic(path, (json.dumps(stats.to_dict(), indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    elif path.suffix == ".parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as err:  # pragma: no cover - pyarrow comes with ray[data]
            raise ImportError("writing Parquet needs pyarrow: pip install pyarrow (or write .json)") from err
        rows = list(stats_rows(stats))
        table = pa.table({c: [r[c] for r in rows] for c in COLUMNS})
        tmp = path.with_name(path.name + ".tmp")
        pq.write_table(table, tmp)
        tmp.replace(path)
    else:
        raise StatsFormatError(f"{path}: write statistics as .json or .parquet")
    log.info("wrote statistics to %s", path)
    return path


def read_stats(path: str | Path, **kwargs: Any) -> Stats:
    """Read back a ``.json`` written by :func:`write_stats` (kwargs as ``Stats.from_dict``)."""
    path = Path(path)
    if path.suffix != ".json":
        raise StatsFormatError(f"{path}: only .json statistics can be read back (Parquet is for analysis)")
    return Stats.from_dict(json.loads(path.read_text(encoding="utf-8")), **kwargs)
