"""Produced counts against the published ones: one row per target, plus what no target names.

M4-Instruct is compared per dataset (``metadata.dataset``, aliases included); ST-Align per
(stage, task), the granularity its paper publishes. ``scale`` makes the published numbers
comparable with a deliberate subsample (e.g. ``scale=0.01`` for a 1 % build).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .stats import Stats
from .targets import UNMAPPED, Targets

# statuses, in the order a reader should care about them
MISSING, UNDER, OVER, OK, NO_TARGET, UNEXPECTED = "missing", "under", "over", "ok", "no target", "not in targets"


@dataclass(frozen=True)
class ComparisonRow:
    family: str  # m4 | st
    group: str  # M4: domain; ST: "stage <n>"
    task: str
    name: str  # M4: dataset; ST: the task's code
    produced: int
    published: int | None
    expected: float | None  # published * scale
    ratio: float | None  # produced / expected
    status: str
    out_of_tolerance: bool
    source: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _row(family, group, task, name, produced, published, *, scale, tolerance, source, unexpected=False):
    expected = ratio = None
    if unexpected:
        status = UNEXPECTED
    elif published is None:
        status = NO_TARGET
    else:
        expected = published * scale
        if expected == 0:
            status = OK if produced == 0 else OVER
        else:
            ratio = produced / expected
            if produced == 0:
                status = MISSING
            elif abs(ratio - 1.0) <= tolerance:
                status = OK
            else:
                status = OVER if ratio > 1 else UNDER
    return ComparisonRow(
        family, group, task, name, produced, published,
        round(expected, 3) if expected is not None else None,
        round(ratio, 4) if ratio is not None else None,
        status, status in (MISSING, UNDER, OVER, UNEXPECTED), source,
    )  # fmt: skip


def compare(stats: Stats, targets: Targets, tolerance: float = 0.1, scale: float = 1.0) -> list[ComparisonRow]:
    """Rows produced vs published; ``out_of_tolerance`` when |produced / (published·scale) − 1| > tolerance.

    A target with nothing produced is ``missing``; a produced dataset or task that no target
    names is ``not in targets`` (both flagged). Targets with an unknown count are ``no target``.
    """
    if tolerance < 0 or scale <= 0:
        raise ValueError(f"tolerance must be >= 0 and scale > 0, got tolerance={tolerance}, scale={scale}")
    kw = {"scale": scale, "tolerance": tolerance}
    rows: list[ComparisonRow] = []
    m4_counts = {k[4]: 0 for k in stats.groups if k[0] == "m4"}
    for key, n in stats.groups.items():
        if key[0] == "m4":
            m4_counts[key[4]] += n
    claimed: set[str] = set()
    for t in targets.m4:
        names = (t.dataset, *t.aliases)
        produced = sum(m4_counts.get(n, 0) for n in names)
        claimed.update(names)
        rows.append(_row("m4", t.domain, t.task, t.dataset, produced, t.count, source=t.source, **kw))
    for name, n in sorted(m4_counts.items()):
        if name not in claimed:
            domains = sorted({k[1] for k in stats.groups if k[0] == "m4" and k[4] == name})
            rows.append(_row("m4", "/".join(domains), UNMAPPED, name, n, None, source="", unexpected=True, **kw))
    st_counts: dict[tuple[str, str], int] = {}
    for key, n in stats.groups.items():
        if key[0] == "st":
            st_counts[(key[2], key[3])] = st_counts.get((key[2], key[3]), 0) + n
    for t in targets.st:
        k = (str(t.stage), f"{t.task} ({t.code})")
        produced = st_counts.pop(k, 0)
        rows.append(_row("st", f"stage {t.stage}", t.task, t.code, produced, t.samples, source=t.sources, **kw))
    for (stage, task), n in sorted(st_counts.items()):
        rows.append(_row("st", f"stage {stage}", task, task, n, None, source="", unexpected=True, **kw))
    return rows


def summarize(rows: list[ComparisonRow]) -> dict[str, int]:
    """How many rows per status (for a one-line verdict)."""
    out: dict[str, int] = {}
    for r in rows:
        out[r.status] = out.get(r.status, 0) + 1
    return out


def _fmt_num(v: float | None) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:,.2f}"
    return f"{int(v):,}"


def format_comparison(rows: list[ComparisonRow], *, only_produced: bool = False, width: int = 32) -> str:
    """A plain-text table for the terminal; ``!`` marks out-of-tolerance rows."""
    shown = [r for r in rows if r.produced or not only_produced]
    head = ("", "family", "group", "name", "task", "produced", "expected", "published", "ratio", "status")
    table = [head]
    for r in shown:
        table.append(
            (
                "!" if r.out_of_tolerance else "",
                r.family,
                r.group,
                r.name[:width],
                r.task[:width],
                f"{r.produced:,}",
                _fmt_num(r.expected),
                _fmt_num(r.published),
                f"{r.ratio:.3f}" if r.ratio is not None else "-",
                r.status,
            )
        )
    widths = [max(len(str(row[i])) for row in table) for i in range(len(head))]
    numeric = {5, 6, 7, 8}
    lines = []
    for j, row in enumerate(table):
        cells = [str(c).rjust(w) if i in numeric else str(c).ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if j == 0:
            lines.append("-" * len(lines[0]))
    counts = summarize(shown)
    lines.append("-" * len(lines[0]))
    lines.append(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) + f"  ({len(shown)} rows)")
    return "\n".join(lines)
