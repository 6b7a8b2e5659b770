"""The build's own accounting (manifest.json, quarantine.jsonl, duplicates.jsonl), read back for the audit.

These files sit next to the shards (written by the executor). Folding them into the statistics
puts what was dropped, and why, beside what was kept, and lets the audit check that the
manifest's ``written`` equals the samples actually found in the shards.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAX_EXAMPLES = 50  # rows of each table kept for the report


class RunLogError(ValueError):
    """A run log that exists but cannot be read (names the file and line)."""


@dataclass
class RunSummary:
    """Counts by reason from one or more runs; counters add, so summaries of several runs merge."""

    totals: Counter = field(default_factory=Counter)  # manifest totals: read, written, quarantined, duplicates
    sources: dict[str, Counter] = field(default_factory=dict)  # per source: read, written, duplicates, q:<reason>
    quarantined_by_reason: Counter = field(default_factory=Counter)
    duplicates_by_reason: Counter = field(default_factory=Counter)
    quarantine_examples: list[dict[str, Any]] = field(default_factory=list)
    duplicate_examples: list[dict[str, Any]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # which logs were found

    def merge(self, other: RunSummary) -> RunSummary:
        sources = {k: Counter(v) for k, v in self.sources.items()}
        for k, v in other.sources.items():
            sources.setdefault(k, Counter()).update(v)
        return RunSummary(
            totals=self.totals + other.totals,
            sources=sources,
            quarantined_by_reason=self.quarantined_by_reason + other.quarantined_by_reason,
            duplicates_by_reason=self.duplicates_by_reason + other.duplicates_by_reason,
            quarantine_examples=(self.quarantine_examples + other.quarantine_examples)[:MAX_EXAMPLES],
            duplicate_examples=(self.duplicate_examples + other.duplicate_examples)[:MAX_EXAMPLES],
            files=sorted(set(self.files) | set(other.files)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "totals": dict(sorted(self.totals.items())),
            "sources": {k: dict(sorted(v.items())) for k, v in sorted(self.sources.items())},
            "quarantined_by_reason": dict(self.quarantined_by_reason.most_common()),
            "duplicates_by_reason": dict(self.duplicates_by_reason.most_common()),
            "quarantine_examples": self.quarantine_examples,
            "duplicate_examples": self.duplicate_examples,
            "files": self.files,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSummary:
        return cls(
            totals=Counter(d.get("totals") or {}),
            sources={k: Counter(v) for k, v in (d.get("sources") or {}).items()},
            quarantined_by_reason=Counter(d.get("quarantined_by_reason") or {}),
            duplicates_by_reason=Counter(d.get("duplicates_by_reason") or {}),
            quarantine_examples=list(d.get("quarantine_examples") or []),
            duplicate_examples=list(d.get("duplicate_examples") or []),
            files=list(d.get("files") or []),
        )


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise RunLogError(f"{path}:{lineno}: not JSON ({err.msg})") from err
        if not isinstance(row, dict):
            raise RunLogError(f"{path}:{lineno}: expected an object")
        rows.append(row)
    return rows


def read_run_logs(shards_dir: str | Path) -> RunSummary | None:
    """The counts by reason from the logs next to the shards; None when there are none (logged)."""
    shards_dir = Path(shards_dir)
    if shards_dir.is_file():
        shards_dir = shards_dir.parent
    summary = RunSummary()
    manifest = shards_dir / "manifest.json"
    if manifest.is_file():
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise RunLogError(f"{manifest}: not JSON ({err.msg})") from err
        summary.totals.update({k: int(v) for k, v in (data.get("totals") or {}).items()})
        for name, src in (data.get("sources") or {}).items():
            c = Counter({k: int(src.get(k, 0)) for k in ("listed", "read", "written", "duplicates")})
            c.update({f"quarantined:{r}": int(n) for r, n in (src.get("quarantined") or {}).items()})
            summary.sources[name] = c
        summary.files.append(manifest.name)
    quarantine = shards_dir / "quarantine.jsonl"
    if quarantine.is_file():
        rows = _read_jsonl(quarantine)
        summary.quarantined_by_reason.update(str(r.get("reason", "?")) for r in rows)
        summary.quarantine_examples = rows[:MAX_EXAMPLES]
        summary.files.append(quarantine.name)
    duplicates = shards_dir / "duplicates.jsonl"
    if duplicates.is_file():
        rows = _read_jsonl(duplicates)
        summary.duplicates_by_reason.update(str(r.get("reason", "?")) for r in rows)
        summary.duplicate_examples = rows[:MAX_EXAMPLES]
        summary.files.append(duplicates.name)
    if not summary.files:
        log.info("no manifest.json / quarantine.jsonl / duplicates.jsonl next to %s", shards_dir)
        return None
    return summary
