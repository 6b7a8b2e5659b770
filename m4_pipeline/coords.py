"""ST-Align coordinates: the one token grammar, time and box conversions, LAPE placeholder text.

LLaVA-ST never writes a coordinate as a number in the text. The text holds placeholder tokens
(``<TEMP-INPUT>`` in human turns, ``<TEMP-OUTPUT>`` in gpt turns; ``WIDTH`` / ``HEIGHT`` alike)
and the values, floats in [0, 1] rounded to 3 decimals, sit in ``variables`` in the order the
tokens appear. A span is ``{<T><T>}``, a box ``[<W><H><W><H>]`` (x1, y1, x2, y2) and a tube a
comma-separated run of ``<T>:[<W><H><W><H>]``.

Conventions, named once here and imported by adapters, the validator, the audit and the trainer
check:

- ``meta.split`` is an **inclusive** frame range ``[s0, s1]`` of the video as decoded; a frame f
  inside it has the time value ``(f - s0) / (s1 - s0)`` (LLaVA-ST's rule). A frame outside it is
  an error, never clamped.
- Seconds become frames with the video's probed fps: ``round(t * fps)``. A time up to one frame
  past the end (annotators write the duration as the end time) maps to the last frame and is
  recorded as an op; anything further, negative, NaN or infinite is an error.
- Boxes are normalised by the image's width and height: pixel ``xywh`` → ``[x, y, x+w, y+h]``;
  1-based pixel boxes (Flickr30k Entities, VOC) subtract 1 first. Up to one pixel outside the
  image is clipped (recorded); further, or an empty or inverted box, is an error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import SourceError

# --- the grammar --------------------------------------------------------------------------------

AXES = ("TEMP", "WIDTH", "HEIGHT")
IOS = ("INPUT", "OUTPUT")
ST_VARIABLES: dict[tuple[str, str], str] = {
    ("TEMP", "INPUT"): "temporal_input_locations",
    ("TEMP", "OUTPUT"): "temporal_output_locations",
    ("HEIGHT", "INPUT"): "spatial_height_input_locations",
    ("HEIGHT", "OUTPUT"): "spatial_height_output_locations",
    ("WIDTH", "INPUT"): "spatial_width_input_locations",
    ("WIDTH", "OUTPUT"): "spatial_width_output_locations",
}  # in the released key order of ``variables``
VARIABLE_NAMES: tuple[str, ...] = tuple(ST_VARIABLES.values())
PLACEHOLDER_TOKENS: tuple[str, ...] = tuple(f"<{axis}-{io}>" for axis, io in ST_VARIABLES)
BIN_TOKENS: tuple[str, ...] = tuple(f"<{axis}-{i:03d}>" for axis in AXES for i in range(100))
NUM_BINS = 100

COORD_TOKEN = re.compile(r"<(TEMP|HEIGHT|WIDTH)-(INPUT|OUTPUT)>")
_IO = r"(?:INPUT|OUTPUT)"
_BOX = rf"\[<WIDTH-{_IO}><HEIGHT-{_IO}><WIDTH-{_IO}><HEIGHT-{_IO}>\]"
TUBE_ITEM = re.compile(rf"(?:<TEMP-{_IO}>:\s*)?{_BOX}")
TUBE = re.compile(rf"{TUBE_ITEM.pattern}(?:,\s*{TUBE_ITEM.pattern})*")
BOX = re.compile(_BOX)
SPAN = re.compile(rf"\{{<TEMP-({_IO})><TEMP-\1>\}}")
MEDIA_PLACEHOLDER = re.compile(r"<image>|<video>")
# The placeholders each family's loader expands: M4 (LLaVA-NeXT-Interleave) only <image>.
PLACEHOLDER_OF = {"m4": re.compile(r"<image>"), "st": MEDIA_PLACEHOLDER}


def io_for_role(role: str) -> str:
    """Human turns carry INPUT tokens, gpt turns OUTPUT tokens."""
    return "INPUT" if role == "human" else "OUTPUT"


def token(axis: str, io: str) -> str:
    return f"<{axis}-{io}>"


def lape_bin(value: float) -> int:
    """The LAPE output bin of a value in [0, 1] (token ``ddd`` decodes to ddd/99)."""
    return round(min(1.0, max(0.0, value)) * (NUM_BINS - 1))


def empty_variables() -> dict[str, list[float]]:
    return {name: [] for name in VARIABLE_NAMES}


def iter_tokens(text: str) -> Iterator[re.Match]:
    return COORD_TOKEN.finditer(text)


# --- conversions --------------------------------------------------------------------------------


def _finite(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise SourceError(f"{what}: expected a number, got {value!r}")
    try:
        v = float(value)
    except ValueError:
        raise SourceError(f"{what}: expected a number, got {value!r}") from None
    if not math.isfinite(v):
        raise SourceError(f"{what}: {value!r} is not a finite number")
    return v


def round3(value: float) -> float:
    return round(float(value), 3)


@dataclass(frozen=True)
class FrameRange:
    """An inclusive frame range ``[start, end]``: ``meta.split`` of an ST sample."""

    start: int
    end: int

    def __post_init__(self):
        if self.end <= self.start or self.start < 0:
            raise SourceError(f"frame range [{self.start}, {self.end}] is empty or negative")

    def as_list(self) -> list[int]:
        return [self.start, self.end]

    def time(self, frame: float, what: str = "frame") -> float:
        """``(frame - start) / (end - start)`` rounded to 3 decimals; outside the range is an error."""
        f = _finite(frame, what)
        if not self.start <= f <= self.end:
            raise SourceError(f"{what} {frame} lies outside the frame range [{self.start}, {self.end}]")
        return round3((f - self.start) / (self.end - self.start))


def frame_range(begin: Any, end: Any, *, end_inclusive: bool, num_frames: int, what: str = "range") -> FrameRange:
    """A source's frame range as an inclusive one, checked against the video's frame count.

    ``end_inclusive=False`` (VidOR / VidSTG ``end_fid``): the last frame is ``end - 1``; an
    exclusive end equal to ``num_frames`` is valid (it ends at the last frame)."""
    b = _finite(begin, f"{what}.begin")
    e = _finite(end, f"{what}.end")
    if b != int(b) or e != int(e):
        raise SourceError(f"{what}: frame ids must be integers, got [{begin}, {end}]")
    last = int(e) if end_inclusive else int(e) - 1
    if b < 0 or last >= num_frames:
        raise SourceError(f"{what}: frames [{begin}, {end}] lie outside the video's {num_frames} frames")
    if last < b:
        raise SourceError(f"{what}: frames [{begin}, {end}] end before they start")
    if last == b:
        raise SourceError(f"{what}: frames [{begin}, {end}] cover a single frame")
    return FrameRange(int(b), last)


@dataclass
class Ops:
    """Conventions applied to a sample's values, recorded in its provenance (``ops``)."""

    items: list[str] = field(default_factory=list)

    def add(self, op: str) -> None:
        if op not in self.items:
            self.items.append(op)


def seconds_to_frame(t: Any, fps: float, num_frames: int, *, what: str = "time", ops: Ops | None = None) -> int:
    """The frame shown at ``t`` seconds: ``round(t * fps)``; see the module's convention."""
    sec = _finite(t, what)
    if fps <= 0 or num_frames < 1:
        raise SourceError(f"{what}: the video has no frame rate or frames (fps {fps}, {num_frames} frames)")
    duration = num_frames / fps
    if sec < 0:
        raise SourceError(f"{what} {t} s is negative")
    frame = round(sec * fps)
    if frame > num_frames - 1:
        if sec > duration + 1.0 / fps:
            raise SourceError(f"{what} {t} s lies past the video's end ({duration:.3f} s)")
        if ops is not None:
            ops.add("time_at_video_end")
        frame = num_frames - 1
    return frame


_HMS = re.compile(r"^\s*(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d+)?)\s*$")


def hms_seconds(text: Any, what: str = "time") -> float:
    """Seconds of a clock time ``H:MM:SS.mmm`` (or ``MM:SS``), as Panda-70M and InternVid write
    clip bounds; minutes and seconds must be below 60."""
    m = _HMS.match(text) if isinstance(text, str) else None
    if not m:
        raise SourceError(f"{what}: {text!r} is not a clock time H:MM:SS.mmm")
    hours, minutes, seconds = int(m.group(1) or 0), int(m.group(2)), float(m.group(3))
    if minutes >= 60 or seconds >= 60:
        raise SourceError(f"{what}: {text!r} has minutes or seconds past 59")
    return round(hours * 3600 + minutes * 60 + seconds, 6)


def seconds_range(start: Any, end: Any, fps: float, num_frames: int, *, what: str = "span", ops: Ops | None = None):
    """``(start_frame, end_frame)`` for a time range in seconds; start must not follow end."""
    s = seconds_to_frame(start, fps, num_frames, what=f"{what}.start", ops=ops)
    e = seconds_to_frame(end, fps, num_frames, what=f"{what}.end", ops=ops)
    if _finite(start, what) > _finite(end, what):
        raise SourceError(f"{what}: starts at {start} s after it ends at {end} s")
    return s, e


BOX_FORMATS = ("xywh", "xyxy")


def norm_box(
    box: Any, *, width: Any, height: Any, fmt: str = "xywh", origin: int = 0, what: str = "box", ops: Ops | None = None
) -> tuple[float, float, float, float]:
    """A pixel box as ``(x1, y1, x2, y2)`` in [0, 1], rounded to 3 decimals.

    ``fmt``: ``xywh`` (COCO, RefCOCO) or ``xyxy``; ``origin``: 0 for 0-based pixels, 1 for
    1-based ones (Flickr30k Entities)."""
    if fmt not in BOX_FORMATS:
        raise ValueError(f"box format {fmt!r} is not one of {BOX_FORMATS}")
    if isinstance(box, dict):
        keys = ("xmin", "ymin", "xmax", "ymax") if fmt == "xyxy" else ("x", "y", "w", "h")
        box = [box.get(k) for k in keys]
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        raise SourceError(f"{what}: expected 4 numbers, got {box!r}")
    W, H = _finite(width, f"{what} image width"), _finite(height, f"{what} image height")
    if W <= 0 or H <= 0:
        raise SourceError(f"{what}: image size {width}x{height} is not positive")
    a, b, c, d = (_finite(v, what) for v in box)
    x1, y1 = a - origin, b - origin
    x2, y2 = (x1 + c, y1 + d) if fmt == "xywh" else (c - origin, d - origin)
    if x2 <= x1 or y2 <= y1:
        raise SourceError(f"{what}: {list(box)} is empty or inverted")
    if x1 < -1 or y1 < -1 or x2 > W + 1 or y2 > H + 1:
        raise SourceError(f"{what}: {list(box)} lies outside the {W:g}x{H:g} image")
    if x1 < 0 or y1 < 0 or x2 > W or y2 > H:
        if ops is not None:
            ops.add("box_clipped_1px")
        x1, y1, x2, y2 = max(0.0, x1), max(0.0, y1), min(W, x2), min(H, y2)
    return round3(x1 / W), round3(y1 / H), round3(x2 / W), round3(y2 / H)


# --- values that render as placeholders ---------------------------------------------------------


class Coord:
    """A coordinate value in a template: renders as placeholder tokens and yields its values."""

    def lape(self, io: str) -> tuple[str, list[tuple[str, float]]]:
        raise NotImplementedError


def _check_unit(v: Any, what: str) -> float:
    f = _finite(v, what)
    if not 0.0 <= f <= 1.0:
        raise SourceError(f"{what}: {v} is outside [0, 1]")
    return round3(f)


@dataclass(frozen=True)
class Time(Coord):
    t: float

    def lape(self, io):
        return token("TEMP", io), [("TEMP", _check_unit(self.t, "time"))]


@dataclass(frozen=True)
class Span(Coord):
    start: float
    end: float

    def lape(self, io):
        s, e = _check_unit(self.start, "span start"), _check_unit(self.end, "span end")
        if s > e:
            raise SourceError(f"span starts after it ends ({s} > {e})")
        return "{" + token("TEMP", io) * 2 + "}", [("TEMP", s), ("TEMP", e)]


@dataclass(frozen=True)
class Box(Coord):
    x1: float
    y1: float
    x2: float
    y2: float

    def values(self) -> list[tuple[str, float]]:
        vals = [_check_unit(v, "box") for v in (self.x1, self.y1, self.x2, self.y2)]
        if vals[0] > vals[2] or vals[1] > vals[3]:
            raise SourceError(f"box {vals} has x1 > x2 or y1 > y2")
        return list(zip(("WIDTH", "HEIGHT", "WIDTH", "HEIGHT"), vals))

    def lape(self, io):
        text = "[" + "".join(token(a, io) for a in ("WIDTH", "HEIGHT", "WIDTH", "HEIGHT")) + "]"
        return text, self.values()


@dataclass(frozen=True)
class Tube(Coord):
    """Boxes at times: ``<T>:[<W><H><W><H>], ...``."""

    items: tuple[tuple[float, Box], ...]

    def lape(self, io):
        if not self.items:
            raise SourceError("a tube needs at least one box")
        texts, values = [], []
        for t, box in self.items:
            bt, bv = box.lape(io)
            texts.append(f"{token('TEMP', io)}:{bt}")
            values += [("TEMP", _check_unit(t, "tube time")), *bv]
        return ", ".join(texts), values


# --- the variables of a conversation -----------------------------------------------------------


class Variables:
    """The six ``variables`` lists, filled in the order the tokens appear in the text."""

    def __init__(self):
        self.lists = empty_variables()

    def add(self, axis: str, io: str, value: float) -> None:
        self.lists[ST_VARIABLES[(axis, io)]].append(value)

    def place(self, coord: Coord, role: str) -> str:
        """The placeholder text of ``coord`` in a ``role`` turn; its values are appended."""
        io = io_for_role(role)
        text, values = coord.lape(io)
        for axis, v in values:
            self.add(axis, io, v)
        return text

    def to_dict(self) -> dict[str, list[float]]:
        return {name: list(vals) for name, vals in self.lists.items()}
