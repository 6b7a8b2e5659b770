"""What the ST-Align video adapters share: the video clock, event lists, source text as templates.

Time rules (LLaVA-ST's, computed by :mod:`m4_pipeline.coords`, the one definition):

- the video is probed once (``Adapter.video_info`` caches it) and the probe is recorded in the
  sample's provenance ops;
- a time in seconds is the frame ``round(t * fps)`` of the video as decoded; up to one frame past
  the end it is the last frame (recorded as an op), further it is an error and the record is
  quarantined, never clamped;
- a clip of a longer video stays the source video plus a frame range (``meta.split``, inclusive);
- a time value is ``(frame - s0) / (s1 - s0)`` over ``meta.split`` (the whole video without one),
  rounded to 3 decimals, written as ``<TEMP-INPUT>`` / ``<TEMP-OUTPUT>`` with the value in
  ``variables`` (``Adapter.st_sample`` renders it);
- 100 frames, uniform over the split, are the sample's media.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...coords import FrameRange, Ops, Span, Time, seconds_range, seconds_to_frame
from ...media.sampling import STRangeSampler, VideoInfo
from ...paths import confined_output
from ...readers import get_reader
from ...sample import Sample
from ...synthetic import write_video
from .. import fields as F
from ..base import Adapter, RawRecord, SourceError, SourceParams

ST_FRAMES = 100
MINI_SIZE = (96, 64)  # miniature videos: small, but wide enough for the moving box


@dataclass
class STVideoParams(SourceParams):
    video_prefix: str = ""  # prefix of the record's "video" path (where the trainer's data_folder has it)


class VideoClock:
    """One probed video: seconds become frames, frames become time values within a frame range."""

    def __init__(self, info: VideoInfo, ops: Ops):
        self.info, self.ops = info, ops
        ops.add(info.provenance())

    @property
    def whole(self) -> FrameRange:
        if self.info.num_frames < 2:
            raise SourceError(f"the video has {self.info.num_frames} frame(s): no time range to ground in")
        return FrameRange(0, self.info.num_frames - 1)

    @property
    def duration(self) -> float:
        return self.info.num_frames / self.info.fps

    def frame(self, seconds: Any, what: str = "time") -> int:
        return seconds_to_frame(seconds, self.info.fps, self.info.num_frames, what=what, ops=self.ops)

    def clip(self, start: Any, end: Any, what: str = "clip") -> FrameRange:
        """The inclusive frame range of ``[start, end]`` seconds (a clip's ``meta.split``)."""
        s, e = seconds_range(start, end, self.info.fps, self.info.num_frames, what=what, ops=self.ops)
        if e <= s:
            raise SourceError(f"{what}: [{start}, {end}] s covers a single frame of the video")
        return FrameRange(s, e)

    def time(self, seconds: Any, within: FrameRange, what: str = "time") -> Time:
        return Time(within.time(self.frame(seconds, what), what))

    def span(self, start: Any, end: Any, within: FrameRange, what: str = "span") -> Span:
        s, e = seconds_range(start, end, self.info.fps, self.info.num_frames, what=what, ops=self.ops)
        return Span(within.time(s, f"{what} start"), within.time(e, f"{what} end"))


class STVideoAdapter(Adapter):
    """Base of the ST video adapters (not a source itself: it has no ``name``)."""

    family = "st"
    Params = STVideoParams

    def clock(self, video: str, ops: Ops | None = None) -> VideoClock:
        return VideoClock(self.video_info(video), ops if ops is not None else Ops())

    def video_sample(
        self,
        record: RawRecord,
        turns: list[tuple[str, str, dict]],
        *,
        video: str,
        clock: VideoClock,
        clip: FrameRange | None = None,
        notes: dict | None = None,
    ) -> Sample:
        """The ST sample: 100 frames over ``clip`` (or the whole video), ``meta.split`` = clip."""
        whole = clip or clock.whole
        indices = STRangeSampler(whole.start, whole.end, ST_FRAMES).indices(clock.info)
        media = self.frames(video, indices, one_slot=True)
        prefix = getattr(self.params, "video_prefix", "")
        return self.st_sample(record, turns, video=f"{prefix.rstrip('/')}/{video}" if prefix else video, split=clip,
                              media=media, templates=notes, ops=clock.ops.items)  # fmt: skip

    # --- listing helpers -----------------------------------------------------------------------
    def items(self, rel: str, reader: str = "json", **options) -> Iterator:
        """The items of one annotation file, through the kit's readers (bad items keep their error)."""
        return get_reader(reader, **options).read_file(self.src, rel)

    @staticmethod
    def broken(item, sid: str, message: str | None = None) -> RawRecord:
        """A record for an item that cannot be used at all (quarantined as ``parse_error``)."""
        return RawRecord(item.file, item.locator, sid, None, item.error or message or f"{item.locator}: unusable")


# --- source text as templates ------------------------------------------------------------------

_MEDIA = re.compile(r"\s*<(?:video|image)>\s*")
_FIELD = re.compile(r"\{(\w+)\}")


def literal(text: str) -> str:
    """Source text inside a template: its braces are not fields."""
    return text.replace("{", "{{").replace("}", "}}")


def without_media(text: str) -> str:
    """The text without ``<video>`` / ``<image>`` placeholders (sources put them anywhere, or none)."""
    return _MEDIA.sub(" ", text).strip()


def first_turn(text: str) -> str:
    """A first human turn: exactly one ``<video>``, at the start (LLaVA-ST's form)."""
    return "<video>\n" + without_media(text)


def tag_times(text: str, pattern: re.Pattern, value_of: Callable[[re.Match], Any], prefix: str = "t"
              ) -> tuple[str, dict]:  # fmt: skip
    """``text`` as a template whose time tags (``pattern`` matches) are fields holding
    ``value_of(match)`` (a :class:`~m4_pipeline.coords.Time` or ``Span``): the rest is literal."""
    out, values, pos = [], {}, 0
    for k, m in enumerate(pattern.finditer(text)):
        name = f"{prefix}{k}"
        out += [literal(text[pos : m.start()]), "{" + name + "}"]
        values[name] = value_of(m)
        pos = m.end()
    out.append(literal(text[pos:]))
    return "".join(out), values


def event_list(template: str, events: list[dict], separator: str) -> tuple[str, dict]:
    """One template for a list of events (dense captions): the event template once per event,
    its fields renamed apart (``{_span}`` of event 2 becomes ``{e2_span}``), joined by ``separator``."""
    if not events:
        raise SourceError("no events to caption")
    parts, values = [], {}
    for i, event in enumerate(events):
        parts.append(_FIELD.sub(lambda m, i=i: "{" + f"e{i}{m.group(1)}" + "}", template))
        values.update({f"e{i}{k}": v for k, v in event.items()})
    return separator.join(parts), values


def caption_text(value: Any, what: str) -> str:
    """A caption or query as text: stripped, never blank."""
    return F.check_text(value, what).strip()


def conversation_turns(turns: Any, where: str) -> list[tuple[str, str]]:
    """``[{from, value}]`` / ``[{role, content}]`` as (human|gpt, text), alternating from human."""
    if not isinstance(turns, list) or not turns:
        raise SourceError(f"{where}: conversations must be a non-empty list of turns")
    out = []
    for i, t in enumerate(turns):
        if not isinstance(t, dict):
            raise SourceError(f"{where}: turn {i} is not an object")
        role = t.get("from", t.get("role"))
        if isinstance(role, str):
            role = {"user": "human", "assistant": "gpt", "User": "human", "Assistant": "gpt"}.get(role, role)
        if role != ("human", "gpt")[i % 2]:
            raise SourceError(f"{where}: turn {i} is {role!r}; turns must alternate human/gpt from human")
        out.append((role, F.check_text(t.get("value", t.get("content")), f"{where}: turn {i}")))
    if out[-1][0] != "gpt":
        raise SourceError(f"{where}: the conversation ends with a question and no answer")
    return out


# --- miniatures ------------------------------------------------------------------------------


def write_clip(root: Path, rel: str, *, fps: float, seconds: float | None = None, frames: int | None = None,
               seed: int = 0) -> None:  # fmt: skip
    """A synthetic video of ``seconds`` (or ``frames``) at ``fps`` at ``rel`` in a miniature."""
    n = frames if frames is not None else round(seconds * fps)
    path = confined_output(root, rel, "miniature video")
    if path.exists():
        return
    write_video(path, seed=seed + int(hashlib.sha1(rel.encode()).hexdigest()[:6], 16), num_frames=n, fps=fps,
                size=MINI_SIZE)  # fmt: skip
