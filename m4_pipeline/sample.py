"""The one sample type that flows through every stage, for both dataset families.

A :class:`Sample` holds the conversation, the media in the order of the record's placeholders,
the fields of the released record (M4-Instruct or ST-Align) and where it came from. Media are
grouped into *slots*: one slot per placeholder (``<image>`` / ``<video>``). An image or a 3D view
fills a slot alone; a video fills one slot with its frames; a tiled image fills one slot with its
patches.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

Family = Literal["m4", "st"]
MediaKind = Literal["image", "frame", "view", "patch", "clip", "video"]
MEDIA_KINDS: tuple[str, ...] = ("image", "frame", "view", "patch", "clip", "video")
ROLES = ("human", "gpt")

_KEY_SAFE = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass
class Turn:
    role: str  # "human" | "gpt" (the released ``from`` field)
    value: str
    extra: dict[str, Any] = field(default_factory=dict)  # other keys of the turn, kept as released


@dataclass
class Media:
    """One image-like member of a sample.

    ``data`` holds encoded bytes (``ext`` tells their format). Kind-specific fields:
    frames carry ``frame_index`` and ``timestamp``; views carry ``pose`` (4x4 camera-to-world)
    and ``intrinsics`` (3x3); patches carry ``grid`` ([row, col], or None for the base image).

    A video slot is either its frames (one ``frame`` each), or one ``clip`` (an H.264 file of
    exactly the sampled frames), or one ``video`` reference with no bytes at all: ``ref`` names
    the source video (``root``: the data root, a recipe source's name; ``path`` under it; its
    ``size`` and ``sha256``). Clips and references list the source ``frames`` they stand for and
    their times: ``fps`` alone when it gives every time (:func:`frame_span`; a constant frame rate,
    the usual case: 100 times would double a reference's size), else ``timestamps``.
    """

    kind: MediaKind
    slot: int
    data: bytes = field(repr=False, default=b"")
    ext: str = "jpg"
    frame_index: int | None = None
    timestamp: float | None = None
    pose: list[list[float]] | None = None
    intrinsics: list[list[float]] | None = None
    grid: list[int] | None = None
    size: list[int] | None = None  # [width, height] of the encoded image
    ops: list[str] | None = None  # normalization applied, e.g. ["exif_orientation:6", "jpeg:95"]
    frames: list[int] | None = None  # clip / video: the source frame indices, in order
    timestamps: list[float] | None = None  # clip / video: their times in seconds, unless ``fps`` gives them
    fps: float | None = None  # clip / video: the source's frame rate when it gives every frame's time
    ref: dict[str, Any] | None = None  # video: {root, path, size, sha256} of the source video
    # The PIL image that ``data`` decodes to, bit for bit, while a later step in the same worker may
    # want the pixels (the dedup signature hashes them rather than decode ``data`` again). Never
    # serialized or compared; the last step that needs it sets it back to None.
    decoded: Any = field(default=None, repr=False, compare=False)

    def source_frames(self) -> list[int]:
        """The source frames this medium stands for: a frame its own, a clip or a video reference
        the ones it lists, anything else none."""
        if self.kind == "frame":
            return [] if self.frame_index is None else [self.frame_index]
        return list(self.frames or []) if self.kind in ("clip", "video") else []

    def times(self) -> list[float]:
        """A clip's or reference's frame times in seconds."""
        if self.timestamps is not None or not self.fps:
            return list(self.timestamps or [])
        return [frame_time(i, self.fps) for i in self.frames or []]

    def digest(self) -> bytes:
        """What makes two media the same content: the sha256 of their bytes; for a reference
        (no bytes) of the source video's sha256 and the frames it stands for."""
        if self.kind == "video" and self.ref:
            return hashlib.sha256(f"{self.ref.get('sha256')}:{self.frames}".encode()).digest()
        return hashlib.sha256(self.data).digest()

    def describe(self) -> dict[str, Any]:
        """The media's metadata without its bytes, as stored in the provenance."""
        bare = replace(self, data=b"", decoded=None)  # asdict would deep-copy the pixels
        return {k: v for k, v in asdict(bare).items() if k not in ("data", "decoded") and v is not None}


def frame_time(index: int, fps: float) -> float:
    """The time of a frame of a constant-rate video, in seconds (to the microsecond)."""
    return round(index / fps, 6)


def frame_span(frames: list[int], times: list[float], fps: float | None) -> dict[str, Any]:
    """A clip's or reference's ``frames`` with their times: ``fps`` alone when every time is
    within half a millisecond of :func:`frame_time` (a constant frame rate, no start offset),
    else the ``timestamps`` (variable rate, an edit list's offset)."""
    if fps and all(abs(t - frame_time(i, fps)) <= 0.0005 for i, t in zip(frames, times, strict=True)):
        return {"frames": frames, "fps": fps}
    return {"frames": frames, "timestamps": times}


@dataclass
class Provenance:
    dataset: str  # source name in the recipe, e.g. "nlvr2"
    source_file: str  # path relative to the source root
    locator: str  # line / row / key inside the source file
    recipe: str = ""
    recipe_version: str = ""
    adapter: str = ""
    recipe_sha256: str = ""  # hash of the parsed recipe: any parameter change shows
    pipeline_version: str = ""
    templates: dict[str, str] = field(default_factory=dict)  # slot -> chosen library template, e.g. "st/tvg#3"
    ops: list[str] = field(default_factory=list)  # conventions applied to the record's values


@dataclass
class Sample:
    """One training sample, independent of the released format it came from or goes to.

    ``record`` holds the released record's own fields other than the conversation
    (M4: ``sample_id``, ``image``/``video``, ``choice_list``, ``metadata``; ST: ``id``, ``type``,
    ``video``/``image``, ``meta``, ``variables``), in the released key order.
    """

    key: str
    family: Family
    conversations: list[Turn]
    record: dict[str, Any] = field(default_factory=dict)
    media: list[Media] = field(default_factory=list)
    provenance: Provenance | None = None
    conv_pos: int | None = None  # position of ``conversations`` among the record's keys; None: canonical

    @property
    def num_slots(self) -> int:
        return len({m.slot for m in self.media})

    def text(self) -> str:
        return "\n".join(t.value for t in self.conversations)


def make_key(source: str, source_id: str) -> str:
    """A deterministic WebDataset key from (source, source id).

    WebDataset splits a member name at its first dot, so keys hold only ``[A-Za-z0-9_-]``;
    when the id had to be changed to fit, a short hash of the original keeps keys unique.
    """
    safe = _KEY_SAFE.sub("_", source_id).strip("_") or "x"
    if safe != source_id:  # surrogatepass: even an id holding a lone surrogate gets a key
        safe = f"{safe}_{hashlib.sha1(source_id.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"
    return f"{_KEY_SAFE.sub('_', source)}-{safe}"
