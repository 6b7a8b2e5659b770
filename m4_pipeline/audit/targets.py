"""Published counts as data, and the taxonomy (dataset -> domain/task, ST source -> stage/task) they imply.

The targets live in ``manifests/m4_instruct_targets.yaml`` and ``manifests/st_align_targets.yaml``
so that a correction to a published number is a data change, reviewed like one, never a code
change. The same files give the statistics their task names, so counts and targets always use
the same vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..resources import manifests_dir

MANIFESTS = manifests_dir()
M4_TARGETS = MANIFESTS / "m4_instruct_targets.yaml"
ST_TARGETS = MANIFESTS / "st_align_targets.yaml"
UNMAPPED = "unmapped"


class TargetsError(ValueError):
    """A targets manifest that does not have the documented shape (the message names the row)."""


@dataclass(frozen=True)
class M4Target:
    dataset: str
    domain: str
    task: str
    count: int | None  # None: not released / unknown
    source: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class STTarget:
    stage: int
    task: str
    code: str
    samples: int
    sources: str
    match: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The key under which the statistics count this row: ``"<stage>|<task> (<code>)"``."""
        return f"{self.stage}|{self.task} ({self.code})"


@dataclass
class Targets:
    """Both families' published targets; either list may be empty."""

    m4: list[M4Target] = field(default_factory=list)
    st: list[STTarget] = field(default_factory=list)

    def m4_row(self, dataset: str) -> M4Target | None:
        for row in self.m4:
            if dataset == row.dataset or dataset in row.aliases:
                return row
        return None

    def st_row(self, type_or_source: str) -> STTarget | None:
        low = type_or_source.lower()
        for row in self.st:
            if low in (m.lower() for m in row.match) or low == row.code.lower():
                return row
        return None


def _require(row: Any, keys: tuple[str, ...], where: str) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise TargetsError(f"{where}: expected a mapping, got {type(row).__name__}")
    missing = [k for k in keys if k not in row]
    if missing:
        raise TargetsError(f"{where}: missing {', '.join(missing)}")
    return row


def _count(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TargetsError(f"{where}: count must be a non-negative integer or null, got {value!r}")
    return value


def _load_yaml(path: Path, family: str) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"targets manifest {path} not found")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("family") != family:
        raise TargetsError(f"{path}: expected a mapping with family: {family}")
    return data


def load_m4_targets(path: str | Path = M4_TARGETS) -> list[M4Target]:
    path = Path(path)
    data = _load_yaml(path, "m4")
    rows = []
    for i, raw in enumerate(data.get("datasets") or []):
        where = f"{path.name}: datasets[{i}]"
        row = _require(raw, ("dataset", "domain", "task", "count", "source"), where)
        rows.append(
            M4Target(
                dataset=str(row["dataset"]),
                domain=str(row["domain"]),
                task=str(row["task"]),
                count=_count(row["count"], f"{where} ({row['dataset']})"),
                source=str(row["source"]),
                aliases=tuple(str(a) for a in row.get("aliases") or ()),
            )
        )
    return rows


def load_st_targets(path: str | Path = ST_TARGETS) -> list[STTarget]:
    path = Path(path)
    data = _load_yaml(path, "st")
    rows = []
    for i, raw in enumerate(data.get("tasks") or []):
        where = f"{path.name}: tasks[{i}]"
        row = _require(raw, ("stage", "task", "code", "samples", "sources"), where)
        samples = _count(row["samples"], f"{where} ({row['task']})")
        if samples is None:
            raise TargetsError(f"{where}: samples must be a number")
        rows.append(
            STTarget(
                stage=int(row["stage"]),
                task=str(row["task"]),
                code=str(row["code"]),
                samples=samples,
                sources=str(row["sources"]),
                match=tuple(str(m) for m in row.get("match") or ()),
            )
        )
    return rows


def load_targets(m4_path: str | Path | None = M4_TARGETS, st_path: str | Path | None = ST_TARGETS) -> Targets:
    """Both manifests (pass None to leave a family out)."""
    return Targets(
        m4=load_m4_targets(m4_path) if m4_path is not None else [],
        st=load_st_targets(st_path) if st_path is not None else [],
    )
