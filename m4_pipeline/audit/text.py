"""Reading the conversation text: placeholder placement, ST coordinate tokens, spans and tubes.

Shared by the statistics and the report's sample browser so that what is counted and what is
shown come from one parser. The token grammar is ``coords``'.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ..coords import BOX, COORD_TOKEN, SPAN, ST_VARIABLES, TUBE, TUBE_ITEM
from ..coords import MEDIA_PLACEHOLDER as PLACEHOLDER
from ..sample import Sample

_WORDS = re.compile(r"\w+|[^\w\s]")

TokenCounter = Callable[[str], int]
APPROX_TOKENIZER = "approx: regex words+punctuation (\\w+|[^\\w\\s]), not a model tokenizer"


def approx_token_count(text: str) -> int:
    """A tokenizer-free stand-in: words and punctuation marks. Real BPE counts differ (often higher)."""
    return len(_WORDS.findall(text))


def placeholder_placement(sample: Sample) -> str:
    """``front``: every placeholder leads the first human turn; ``interleaved``: any other place; ``none``.

    The M4 paper trains on a mix of the two formats, so the mix is an audit figure.
    """
    turns = sample.conversations
    total = sum(len(PLACEHOLDER.findall(t.value)) for t in turns)
    if total == 0:
        return "none"
    first = next((t for t in turns if t.role == "human"), None)
    if first is None:
        return "interleaved"
    head = first.value.lstrip()
    leading = 0
    while m := PLACEHOLDER.match(head):
        leading += 1
        head = head[m.end() :].lstrip()
    return "front" if leading == total else "interleaved"


@dataclass(frozen=True)
class CoordToken:
    """One LAPE placeholder occurrence: which list it reads and its value (None if the list is short)."""

    turn: int
    start: int
    end: int
    axis: str  # TEMP | HEIGHT | WIDTH
    io: str  # INPUT | OUTPUT
    index: int  # position in its variables list
    value: float | None

    @property
    def variable(self) -> str:
        return ST_VARIABLES[(self.axis, self.io)]


def coord_tokens(sample: Sample) -> list[CoordToken]:
    """Every coordinate token in conversation order, paired with its value from ``variables``."""
    variables = sample.record.get("variables") or {}
    counts: dict[tuple[str, str], int] = {}
    out = []
    for ti, turn in enumerate(sample.conversations):
        for m in COORD_TOKEN.finditer(turn.value):
            axis, io = m.group(1), m.group(2)
            idx = counts.get((axis, io), 0)
            counts[(axis, io)] = idx + 1
            values = variables.get(ST_VARIABLES[(axis, io)]) or []
            raw = values[idx] if idx < len(values) else None
            value = float(raw) if isinstance(raw, (int, float)) and not isinstance(raw, bool) else None
            out.append(CoordToken(ti, m.start(), m.end(), axis, io, idx, value))
    return out


def span_lengths(sample: Sample, tokens: list[CoordToken] | None = None) -> list[float]:
    """end − start of every ``{<TEMP-X><TEMP-X>}`` span whose two values are known."""
    tokens = coord_tokens(sample) if tokens is None else tokens
    by_pos = {(t.turn, t.start): t for t in tokens}
    out = []
    for ti, turn in enumerate(sample.conversations):
        for m in SPAN.finditer(turn.value):
            a = by_pos.get((ti, m.start() + 1))
            b = by_pos.get((ti, a.end)) if a else None
            if a and b and a.value is not None and b.value is not None:
                out.append(round(b.value - a.value, 6))
    return out


def boxes_per_tube(sample: Sample) -> list[int]:
    """For each tube (a run of ``<TEMP>:[W H W H]`` items separated by commas), its number of boxes."""
    out = []
    for turn in sample.conversations:
        for m in TUBE.finditer(turn.value):
            out.append(len(BOX.findall(m.group(0))))
    return out


def tube_boxes(sample: Sample, tokens: list[CoordToken] | None = None) -> list[tuple[float | None, list[float]]]:
    """(time, [x1, y1, x2, y2]) for each box with all four values known; time None for a bare box."""
    tokens = coord_tokens(sample) if tokens is None else tokens
    by_pos = {(t.turn, t.start): t for t in tokens}
    out: list[tuple[float | None, list[float]]] = []
    for ti, turn in enumerate(sample.conversations):
        for m in TUBE_ITEM.finditer(turn.value):
            inner = [by_pos.get((ti, c.start() + m.start())) for c in COORD_TOKEN.finditer(m.group(0))]
            if any(t is None for t in inner):
                continue
            time = inner[0].value if len(inner) == 5 else None
            quad = [t.value for t in inner[-4:]]
            if all(v is not None for v in quad):
                out.append((time, quad))  # type: ignore[arg-type]
    return out
