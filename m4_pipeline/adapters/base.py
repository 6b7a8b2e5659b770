"""The contract every source adapter implements, and what the base class owns.

A source declares itself by subclassing :class:`Adapter` with a ``name``: it is registered where
it is defined (``REGISTRY``), and one contract test holds every registered source to the same
rules. It implements:

- the listing, either ``annotation_files()`` plus a ``reader`` (the base class reads them part by
  part and turns each item into a :class:`RawRecord`; ``source_id`` names it) or, for a listing
  with real logic, ``list_records()``;
- ``to_sample(record)``: one record into a :class:`~m4_pipeline.sample.Sample`, media loaded;
- ``write_miniature(root)``: a small copy of the source in its real published layout.

The base class owns the rest: the confined source root (``self.src``: every file is opened
through it), keys, provenance, the M4 / ST record builders, template choice, typed field access
(:mod:`.fields`) and a small per-adapter cache for media that several records share.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from .. import __version__
from ..coords import FrameRange, Variables
from ..errors import BuildError, MediaError, SourceError
from ..formats import m4_record
from ..media.clips import clip_media
from ..media.images import encode_jpeg, normalize_image, read_image_file
from ..media.patches import PadToSquare
from ..media.video import frame_files, frame_media, frame_times, iter_frames, probe
from ..paths import SourceRoot
from ..readers import Item, ParquetBlobs, Part, get_reader, is_blob
from ..sample import Family, Media, Provenance, Sample, Turn, frame_span, make_key
from ..templates import choose, render
from ..writer import file_sha256

__all__ = [
    "REGISTRY",
    "WHOLE",
    "Adapter",
    "MediaError",
    "RawRecord",
    "SourceError",
    "SourceParams",
    "get_adapter",
    "sources",
]

REGISTRY: dict[str, type[Adapter]] = {}
MEDIA_MODES = ("frames", "clip", "reference")  # how a video slot is stored (a recipe source's ``media``)
DEFAULT_MAX_SIDE = 384  # video frames and clips are scaled down to this longer side (0: kept as decoded)
WHOLE = Part("*")  # the part of an adapter that lists its records itself


@dataclass
class RawRecord:
    """One annotation record, before it becomes a sample.

    ``error`` is set (and ``data`` is None) when the record could not even be parsed; it is
    still counted as read and is quarantined with that reason.
    """

    source_file: str  # relative to the source root
    locator: str  # "line 12", "row 7", "index 3", "key abc", ...
    source_id: str  # the record's own id, used for the sample key
    data: Any = None
    error: str | None = None
    reason: str = ""  # the quarantine reason of ``error`` ("" = parse_error)
    resume: list | None = None  # [part, i]: the part that reads on from this record's item, and its
    # index among the item's records (None: the listing cannot start here)

    def to_json(self) -> str:
        return json.dumps([self.source_file, self.locator, self.source_id, self.data, self.error, self.reason,
                           self.resume])  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> RawRecord:
        return cls(*json.loads(text))


@dataclass
class SourceParams:
    """Parameters every source has; an adapter's ``Params`` extends this."""

    dataset_name: str = ""  # M4 ``metadata.dataset`` (the release's spelling)
    metadata_split: str = ""  # M4 ``metadata.split``: "" carries the source's own split


class Adapter:
    """Base class of source adapters; a subclass with a ``name`` registers itself."""

    name: ClassVar[str] = ""
    family: ClassVar[Family] = "m4"
    Params: ClassVar[type] = SourceParams
    description: ClassVar[str] = ""
    reader: ClassVar[str] = ""  # reader of ``annotation_files()``; "" when list_records() is implemented
    reader_options: ClassVar[dict] = {}
    cache_size: ClassVar[int] = 8
    abstract: ClassVar[bool] = False  # a factory of sources (``declarative``), not a source itself
    part_bytes: int = 64 << 20  # about how much of a large annotation file one listing part covers

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("name"):
            if cls.name in REGISTRY and REGISTRY[cls.name].__qualname__ != cls.__qualname__:
                raise BuildError(f"source name {cls.name!r} is declared twice ({REGISTRY[cls.name]} and {cls})")
            REGISTRY[cls.name] = cls

    def __init__(self, root: str | Path, params: Any = None, *, source_name: str | None = None,
                 symlinks: str = "refuse", media: str = "frames", max_side: int = DEFAULT_MAX_SIDE):  # fmt: skip
        if media not in MEDIA_MODES:
            raise BuildError(f"media {media!r} is not one of {', '.join(MEDIA_MODES)}")
        self.media_mode, self.max_side = media, max_side
        self.src = SourceRoot(root, symlinks=symlinks)
        self.root = self.src.root
        self.params = params if params is not None else self.Params()
        self.source_name = source_name or self.name
        self._cache: OrderedDict = OrderedDict()

    # --- to implement -------------------------------------------------------------------------
    def annotation_files(self) -> list[str]:
        """The annotation files ``reader`` reads (relative to the source root)."""
        raise NotImplementedError(f"{type(self).__name__}: implement annotation_files() or list_records()")

    def source_id(self, item: Item) -> str:
        """The record's id, stable while the file is: by default its file and position."""
        return f"{PurePosixPath(item.file).stem}-{item.locator.replace(' ', '')}"

    def to_sample(self, record: RawRecord) -> Sample:
        """Build the sample; raise SourceError / MediaError for input that cannot be used."""
        raise NotImplementedError

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        raise NotImplementedError(f"{cls.__name__} has no miniature")

    def preflight(self) -> None:
        """Checks run once before any record is built (configuration faults raise BuildError)."""

    # --- listing (owned by the base class) -----------------------------------------------------
    def get_reader(self):
        return get_reader(self.reader, **self.reader_options)

    def parts(self) -> list[Part]:
        """Pieces of the listing that can be read independently (a file, a byte range, a row group)."""
        if not self.reader:
            return [WHOLE]
        r = self.get_reader()
        return [p for rel in self.annotation_files() for p in r.parts(self.src, rel, target_bytes=self.part_bytes)]

    def records(self, part: Part) -> Iterator[RawRecord]:
        """The records of a part, in order; each carries where a listing can resume at it."""
        if part == WHOLE:
            yield from self.list_records()
            return
        for item in self.get_reader().read(self.src, part):
            resume = item.resume_part(part)
            for i, record in enumerate(self.records_from(item)):
                record.resume = None if resume is None else [resume.to_list(), i]
                yield record

    def records_from(self, item: Item) -> list[RawRecord]:
        """The records of one item: one by default; a source whose items hold several samples
        (VidSTG: one entry, several sentences) returns them all, in a stable order."""
        return [self.record_of(item)]

    def list_records(self) -> Iterator[RawRecord]:
        if not self.reader:
            raise NotImplementedError(f"{type(self).__name__}: implement list_records() or set a reader")
        for part in self.parts():
            yield from self.records(part)

    def record_of(self, item: Item) -> RawRecord:
        """The record of an item; an id that is there but unusable (a lone surrogate, a list)
        makes the record quarantined with that reason (it is keyed by file and position)."""
        fallback = f"{PurePosixPath(item.file).stem}-{item.locator}"
        try:
            sid = self.source_id(item) if item.error is None else ""
        except SourceError as err:
            return RawRecord(item.file, item.locator, fallback, item.data, f"{item.locator}: id: {err}", err.reason)
        return RawRecord(item.file, item.locator, sid or fallback, item.data, item.error)

    # --- owned by the base class -------------------------------------------------------------
    def key_for(self, record: RawRecord) -> str:
        return make_key(self.source_name, record.source_id)

    def build(
        self, record: RawRecord, *, recipe: str = "", recipe_version: str = "", recipe_sha256: str = ""
    ) -> Sample:
        if record.error is not None:
            raise SourceError(record.error, reason=record.reason or "parse_error")
        sample = self.to_sample(record)
        sample.key = self.key_for(record)
        noted = sample.provenance or Provenance("", "", "")
        sample.provenance = Provenance(
            dataset=self.source_name,
            source_file=record.source_file,
            locator=record.locator,
            recipe=recipe,
            recipe_version=recipe_version,
            adapter=self.name,
            recipe_sha256=recipe_sha256,
            pipeline_version=__version__,
            templates=noted.templates,
            ops=noted.ops,
        )
        return sample

    # --- templates ----------------------------------------------------------------------------
    def template(self, sample_notes: dict, ref: str | list[str], record: RawRecord, slot: str) -> str:
        """A template (``@group/name``, an inline list or a literal) chosen by the sample key;
        the choice is noted under ``slot`` for provenance."""
        text, label = choose(ref, self.key_for(record), slot)
        if label:
            sample_notes[slot] = label
        return text

    # --- sample builders ----------------------------------------------------------------------
    def m4_sample(
        self,
        record: RawRecord,
        turns: list[tuple[str, str]],
        *,
        images: list[str] | None = None,
        video: str | None = None,
        media: list[Media] | None = None,
        question_type: str = "open-ended",
        choice_list: list | None = None,
        task_instruction: str = "",
        split: str = "train",
        dataset: str | None = None,
        templates: dict | None = None,
        ops: list[str] | None = None,
    ) -> Sample:
        """An M4-Instruct sample: the record in the released key order, metadata from params."""
        p = self.params
        rec = m4_record(
            record.source_id,
            images or [],
            dataset=dataset or getattr(p, "dataset_name", "") or self.source_name,
            question_type=question_type,
            task_instruction=task_instruction,
            choice_list=choice_list,
            split=getattr(p, "metadata_split", "") or split,
        )
        if video is not None:
            rec = {"sample_id": rec["sample_id"], "video": video, **{k: v for k, v in rec.items() if k != "sample_id"}}
            rec.pop("image")
        return Sample(key="", family="m4", conversations=[Turn(r, v) for r, v in turns], record=rec,
                      media=list(media or []), provenance=_notes(templates, ops))  # fmt: skip

    def st_sample(
        self,
        record: RawRecord,
        turns: list[tuple[str, str, dict]],
        *,
        video: str | None = None,
        image: str | None = None,
        split: FrameRange | None = None,
        media: list[Media] | None = None,
        kind: str | None = None,
        templates: dict | None = None,
        ops: list[str] | None = None,
    ) -> Sample:
        """An ST-Align sample: turns are ``(role, template, values)``, rendered by
        :func:`m4_pipeline.templates.render`; coordinate values (:mod:`m4_pipeline.coords`)
        become placeholder tokens and fill ``variables`` in order of appearance."""
        variables = Variables()
        rendered = [(role, render(tpl, values, record.locator, variables=variables, role=role))
                    for role, tpl, values in turns]  # fmt: skip
        rec: dict[str, Any] = {"id": record.source_id}
        if kind:
            rec["type"] = kind
        if video is not None:
            rec["video"] = video
        if image is not None:
            rec["image"] = image
        if split is not None:
            rec["meta"] = {"split": split.as_list()}
        rec["variables"] = variables.to_dict()
        return Sample(key="", family="st", conversations=[Turn(r, v) for r, v in rendered], record=rec,
                      media=list(media or []), provenance=_notes(templates, ops))  # fmt: skip

    # --- media (always through the confined root) ---------------------------------------------
    def cached(self, key: Any, make: Callable[[], Any]) -> Any:
        """``make()`` once per key for the last ``cache_size`` keys (media several records share)."""
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        value = make()
        self._cache[key] = value
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return value

    def image(self, rel: str, slot: int, *, pad_to_square: bool = False, what: str = "image") -> Media:
        img = read_image_file(self.src.file(rel, what), rel)
        return _image_media(img, slot, pad_to_square)

    def image_from_bytes(self, data: bytes, what: str, slot: int, *, pad_to_square: bool = False) -> Media:
        return _image_media(normalize_image(data, what), slot, pad_to_square)

    def embedded_bytes(self, value: Any, what: str = "image") -> bytes | None:
        """The bytes of an embedded medium: a parquet blob reference, raw bytes, or an HF image
        struct ``{bytes, path}`` holding either; None when the struct's bytes are null (its
        ``path`` then names a file elsewhere, e.g. in an archive)."""
        if isinstance(value, dict) and not is_blob(value) and "bytes" in value:
            value = value["bytes"]
        if value is None:
            return None
        if isinstance(value, (bytes, bytearray)):
            return bytes(value)
        if is_blob(value):
            if getattr(self, "_blobs", None) is None:
                self._blobs = ParquetBlobs(self.src)
            return self._blobs.read(value, what)
        raise SourceError(f"{what}: expected embedded bytes, got {type(value).__name__}")

    def video_info(self, rel: str, *, folder_fps: float = 1.0):
        path = self.src.path(rel, "video")
        if not path.exists():
            raise MediaError(f"missing video: {rel}", reason="missing_media")
        return self.cached(("probe", rel, folder_fps), lambda: probe(path, folder_fps=folder_fps))

    def frames(self, rel: str, indices: list[int], *, one_slot: bool, folder_fps: float = 1.0) -> list[Media]:
        """The frames of a video file or frame folder at ``indices``, stored as the source's
        ``media`` mode asks for a video slot (``one_slot``): JPEG ``frame`` media (scaled to
        ``max_side``), one ``clip`` holding exactly them, or one ``video`` reference to the source
        file with no pixels at all. Frames as images (``one_slot`` False) are always JPEG frames.
        Several records on one video share the decode."""
        info = self.video_info(rel, folder_fps=folder_fps)
        path = self.src.path(rel, "video")
        mode = self.media_mode if one_slot else "frames"
        indices = list(indices)

        def make() -> tuple[Media, ...]:
            if mode == "reference":
                return (self._reference(rel, path, indices, info),)
            decoded = list(iter_frames(path, indices, info))
            if mode == "clip":
                return (clip_media(decoded, max_side=self.max_side, fps=info.fps or 10.0, source_fps=info.fps),)
            return tuple(frame_media(decoded, one_slot=one_slot, max_side=self.max_side))

        return list(self.cached(("frames", rel, tuple(indices), one_slot), make))

    def _reference(self, rel: str, path: Path, indices: list[int], info) -> Media:
        """A ``video`` reference: the source's path under this source's root, its size and
        sha256 (a frame folder: of its chosen frame files), the frames and their times. The
        pixels of a few frames are decoded only if a later step (the dedup signature) asks."""
        if path.is_dir():
            files = frame_files(path)
            digest = hashlib.sha256()
            for i in indices:
                digest.update(files[i].read_bytes())
            sha, size = digest.hexdigest(), sum(files[i].stat().st_size for i in set(indices))
        else:
            sha, size = self.cached(("sha256", rel), lambda: file_sha256(path)), path.stat().st_size
        ref = {"root": self.source_name, "path": rel, "size": size, "sha256": sha}
        span = frame_span(indices, frame_times(path, indices, info), info.fps)
        media = Media("video", 0, b"", "ref", size=[info.width, info.height], ref=ref, ops=["reference"], **span)
        media.decoded = lambda wanted: [f.pixels for f in iter_frames(path, wanted, info)]
        return media


def _notes(templates: dict | None, ops: list[str] | None) -> Provenance | None:
    if not templates and not ops:
        return None
    return Provenance("", "", "", templates=dict(templates or {}), ops=list(ops or []))


def _image_media(img, slot: int, pad_to_square: bool) -> Media:
    if pad_to_square:
        square = PadToSquare().apply(img.image)
        return Media("image", slot, encode_jpeg(square), "jpg", size=list(square.size), ops=[*img.ops, "pad_to_square"])
    return Media("image", slot, img.data, img.ext, size=list(img.size), ops=img.ops, decoded=img.decoded)


def sources() -> list[str]:
    """The names of the registered sources (adapters that are sources, not factories)."""
    return sorted(name for name, cls in REGISTRY.items() if not cls.abstract)


_RESCAN: list = []  # set by the package: re-reads the declaration folders (a source added since import)


def get_adapter(name: str) -> type[Adapter]:
    if name not in REGISTRY:
        for rescan in _RESCAN:
            rescan()
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown adapter {name!r}; valid adapters: {', '.join(sorted(REGISTRY))}") from None
