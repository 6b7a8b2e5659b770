"""The registry of benchmarks checked for contamination: the one place that names them all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from . import charades, flickr30k, interleave, refcoco, st_align
from .base import BenchItem, BenchmarkLayoutError

EVALSETS: dict[str, ModuleType] = {
    interleave.NAME: interleave,
    st_align.NAME: st_align,
    charades.NAME: charades,
    refcoco.NAME: refcoco,
    flickr30k.NAME: flickr30k,
}


def get_evalset(name: str) -> ModuleType:
    try:
        return EVALSETS[name]
    except KeyError:
        raise KeyError(f"unknown benchmark {name!r}; valid benchmarks: {', '.join(sorted(EVALSETS))}") from None


def read_evalset(name: str, root: str | Path) -> Iterator[BenchItem]:
    return get_evalset(name).read(Path(root))


def write_miniature(name: str, root: str | Path) -> None:
    """Write the miniature copy of a benchmark in its published layout."""
    get_evalset(name).write_miniature(Path(root))


__all__ = ["EVALSETS", "BenchItem", "BenchmarkLayoutError", "get_evalset", "read_evalset", "write_miniature"]
