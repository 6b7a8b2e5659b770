"""Fixed-bin histograms whose merge is exact, so per-shard statistics sum to the whole-run ones.

Bins are fixed up front (never derived from the data), and sums are kept as integers of
``value * scale``: adding two histograms is integer addition, hence associative and commutative
bit for bit — unlike float sums or quantile sketches, whose merge depends on the order.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any


class HistogramMismatch(ValueError):
    """Two histograms with different bins (or scales) cannot be merged."""


def int_edges(top: int) -> tuple[float, ...]:
    """Unit bins [0,1), [1,2), ..., [top-1, top]; values above ``top`` overflow."""
    return tuple(float(k) for k in range(top + 1))


def step_edges(lo: float, hi: float, step: float) -> tuple[float, ...]:
    n = round((hi - lo) / step)
    return tuple(round(lo + k * step, 9) for k in range(n + 1))


@dataclass
class Histogram:
    """Counts over ``edges``: ``counts[0]`` below ``edges[0]``, ``counts[-1]`` above ``edges[-1]``.

    Regular bin ``i`` is ``[edges[i], edges[i+1])``; the last one is closed, so 1.0 lands in
    the top bin of a [0, 1] histogram rather than in the overflow.
    """

    edges: tuple[float, ...]
    scale: int = 1
    counts: list[int] = field(default_factory=list)
    n: int = 0
    scaled_sum: int = 0
    min: float | None = None
    max: float | None = None

    def __post_init__(self) -> None:
        self.edges = tuple(float(e) for e in self.edges)
        if len(self.edges) < 2 or any(b <= a for a, b in zip(self.edges, self.edges[1:])):
            raise ValueError(f"histogram edges must be increasing, at least two: {self.edges[:5]}...")
        if not self.counts:
            self.counts = [0] * (len(self.edges) + 1)
        elif len(self.counts) != len(self.edges) + 1:
            raise ValueError(f"{len(self.counts)} counts for {len(self.edges)} edges (expected edges + 1)")

    def add(self, value: float, weight: int = 1) -> None:
        i = bisect_right(self.edges, value)
        if i == len(self.edges) and value == self.edges[-1]:
            i -= 1  # the last regular bin is closed on the right
        self.counts[i] += weight
        self.n += weight
        self.scaled_sum += round(value * self.scale) * weight
        self.min = value if self.min is None else min(self.min, value)
        self.max = value if self.max is None else max(self.max, value)

    def merge(self, other: Histogram) -> Histogram:
        if self.edges != other.edges or self.scale != other.scale:
            raise HistogramMismatch("cannot merge histograms with different bins or scales")
        mins = [v for v in (self.min, other.min) if v is not None]
        maxs = [v for v in (self.max, other.max) if v is not None]
        return Histogram(
            edges=self.edges,
            scale=self.scale,
            counts=[a + b for a, b in zip(self.counts, other.counts)],
            n=self.n + other.n,
            scaled_sum=self.scaled_sum + other.scaled_sum,
            min=min(mins) if mins else None,
            max=max(maxs) if maxs else None,
        )

    @property
    def mean(self) -> float | None:
        return self.scaled_sum / self.scale / self.n if self.n else None

    def bins(self) -> list[tuple[float | None, float | None, int]]:
        """(low, high, count) for underflow, each regular bin and overflow (None = unbounded)."""
        lows: list[float | None] = [None, *self.edges]
        highs: list[float | None] = [*self.edges, None]
        return list(zip(lows, highs, self.counts))

    def to_dict(self) -> dict[str, Any]:
        mean = self.mean
        return {
            "edges": list(self.edges),
            "scale": self.scale,
            "counts": list(self.counts),
            "n": self.n,
            "scaled_sum": self.scaled_sum,
            "mean": round(mean, 6) if mean is not None else None,
            "min": self.min,
            "max": self.max,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Histogram:
        return cls(
            edges=tuple(d["edges"]),
            scale=int(d["scale"]),
            counts=[int(c) for c in d["counts"]],
            n=int(d["n"]),
            scaled_sum=int(d["scaled_sum"]),
            min=d.get("min"),
            max=d.get("max"),
        )
