"""A sample's dedup signature: everything near-dup and decontamination need, without media bytes.

Workers compute it next to the sample (:func:`signature_of`) and ship it as a small JSON-ready
row (:meth:`SampleSignature.to_row`); the driver or a shuffle stage compares signatures only.

Media are summarized per *slot* (one placeholder): an image, a 3D view or a tiled image
(its base image; the tiles are derived from it) is one pHash; a video is the pHashes of up to
``max_video_frames`` of its frames, uniformly chosen, in order. A media that still carries its
decoded pixels (``Media.decoded``: kept original JPEGs) is hashed from them, not decoded again;
the hash is the same bit for bit.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from ..sample import Media, Sample
from .config import NearDupConfig
from .exact import MediaKey, TextKey
from .phash import hash_from_hex, hash_hex, hash_pixels, shrink, shrink_bytes
from .text import fuzzy_text, minhash

_IMAGE_DATASETS = (("coco", "coco"), ("flickr", "flickr30k"))  # a word in the image path -> its dataset
_COCO_FILE = re.compile(r"(?:COCO_(?:train|val)2014_)?(\d{6,12})\.(?:jpe?g|png)$", re.IGNORECASE)


@dataclass
class SlotHash:
    kind: str  # "image" (image, view, tiled image) or "video" (frames)
    phashes: list[int]  # one for an image; the chosen frames' in order for a video
    sha256: list[str]  # digests of the same members' bytes
    pixels: int  # the largest width x height in the slot


@dataclass
class SampleSignature:
    key: str
    source: str = ""
    pixels: int = 0  # total pixels of the hashed media: the keep policy's resolution
    slots: list[SlotHash] = field(default_factory=list)
    text_key: str = ""  # exact text digest (TextKey)
    media_key: str = ""  # exact media digest (MediaKey)
    conv_minhash: np.ndarray | None = None
    turn_minhash: list[np.ndarray] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)  # human turns, fuzzy-normalized
    video_ids: list[str] = field(default_factory=list)  # lower-case file stems / frame folders
    image_ids: list[str] = field(default_factory=list)  # e.g. "coco:581857"
    video_sha256: list[str] = field(default_factory=list)  # source video files, when the caller knows them

    @property
    def has_media(self) -> bool:
        return bool(self.slots)

    def to_row(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "source": self.source,
            "pixels": self.pixels,
            "slots": [
                {"kind": s.kind, "phashes": [hash_hex(h) for h in s.phashes], "sha256": s.sha256, "pixels": s.pixels}
                for s in self.slots
            ],
            "text_key": self.text_key,
            "media_key": self.media_key,
            "conv_minhash": None if self.conv_minhash is None else self.conv_minhash.tolist(),
            "turn_minhash": [m.tolist() for m in self.turn_minhash],
            "questions": self.questions,
            "video_ids": self.video_ids,
            "image_ids": self.image_ids,
            "video_sha256": self.video_sha256,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> SampleSignature:
        slots = [
            SlotHash(s["kind"], [hash_from_hex(h) for h in s["phashes"]], list(s["sha256"]), int(s["pixels"]))
            for s in row["slots"]
        ]
        conv = row.get("conv_minhash")
        return cls(
            key=row["key"],
            source=row.get("source", ""),
            pixels=int(row.get("pixels", 0)),
            slots=slots,
            text_key=row.get("text_key", ""),
            media_key=row.get("media_key", ""),
            conv_minhash=None if conv is None else np.asarray(conv, np.uint32),
            turn_minhash=[np.asarray(m, np.uint32) for m in row.get("turn_minhash", [])],
            questions=list(row.get("questions", [])),
            video_ids=list(row.get("video_ids", [])),
            image_ids=list(row.get("image_ids", [])),
            video_sha256=list(row.get("video_sha256", [])),
        )


def _slot_members(sample: Sample, max_frames: int) -> list[tuple[str, list[Media]]]:
    by_slot: dict[int, list[Media]] = {}
    for m in sample.media:
        by_slot.setdefault(m.slot, []).append(m)
    out = []
    for slot in sorted(by_slot):
        members = by_slot[slot]
        if members[0].kind in ("clip", "video"):  # one medium stands for the whole video
            out.append(("video", members[:1]))
        elif any(m.kind == "frame" for m in members):
            frames = [m for m in members if m.kind == "frame"]
            pick = np.unique(np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).round().astype(int))
            out.append(("video", [frames[i] for i in pick]))
        else:  # an image, a view, or a tiled image: its base (grid None) stands for the tiles
            base = [m for m in members if m.kind != "patch" or m.grid is None] or members
            out.append(("image", base[:1]))
    return out


def _pixels(m: Media) -> int:
    return int(m.size[0]) * int(m.size[1]) if m.size else 0


def _record_paths(record: dict[str, Any], field_name: str) -> list[str]:
    value = record.get(field_name)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def video_ids_of(sample: Sample) -> list[str]:
    """Video ids a benchmark could share: the stem of each ``video`` path in the record, and
    the folder of frame images (NExT-QA style ``nextqa/<video id>/frame_000012.jpg``)."""
    ids = {PurePosixPath(p).stem.lower() for p in _record_paths(sample.record, "video")}
    if any(m.kind == "frame" for m in sample.media):
        ids |= {PurePosixPath(p).parent.name.lower() for p in _record_paths(sample.record, "image") if "/" in p}
    return sorted(i for i in ids if i)


def image_ids_of(sample: Sample) -> list[str]:
    """Dataset image ids named by the record's image paths: ``coco:<id>`` (``coco/train2017/
    000000581857.jpg``, ``COCO_train2014_000000581857.jpg``; RefCOCO test images are COCO
    train2014 images) and ``flickr30k:<id>`` (``flickr30k/flickr30k-images/1000092795.jpg``)."""
    ids = set()
    for p in _record_paths(sample.record, "image"):
        match = _COCO_FILE.search(PurePosixPath(p).name)
        dataset = next((name for word, name in _IMAGE_DATASETS if word in p.lower()), None)
        if match and dataset:
            ids.add(f"{dataset}:{int(match.group(1))}")
    return sorted(ids)


def _shrunk(m: Media, draft: bool) -> np.ndarray:
    if m.decoded is not None and not draft:  # a draft decode of the bytes is cheaper than the full pixels
        return shrink(m.decoded)
    return shrink_bytes(m.data, draft)


def media_phashes(media: list[Media], *, draft: bool = False) -> np.ndarray:
    """pHashes (uint64) of the media, from their decoded pixels where they still carry them."""
    if not media:
        return np.zeros(0, np.uint64)
    return hash_pixels(np.stack([_shrunk(m, draft) for m in media]))


def signature_of(sample: Sample, config: NearDupConfig | None = None) -> SampleSignature:
    """Hash a sample's media (pHash + sha256) and text (MinHash) into its signature.

    This is the last step that wants the media's decoded pixels: it releases them
    (``Media.decoded = None``) so that they do not outlive the signature."""
    config = config or NearDupConfig()
    slot_members = _slot_members(sample, config.max_video_frames)
    flat = [m for _, members in slot_members for m in members if m.kind not in ("clip", "video")]
    hashes = iter(media_phashes(flat, draft=config.jpeg_draft).tolist())
    slots = []
    for kind, members in slot_members:
        if members[0].kind in ("clip", "video"):
            slots.append(_whole_video_slot(members[0], config.max_video_frames))
            continue
        slots.append(
            SlotHash(
                kind=kind,
                phashes=[int(next(hashes)) for _ in members],
                sha256=[hashlib.sha256(m.data).hexdigest() for m in members],
                pixels=max(_pixels(m) for m in members),
            )
        )
    for m in sample.media:
        m.decoded = None
    turns = [t.value for t in sample.conversations]
    return SampleSignature(
        key=sample.key,
        source=sample.provenance.dataset if sample.provenance else "",
        pixels=sum(s.pixels for s in slots),
        slots=slots,
        text_key=TextKey().key(sample),
        media_key=MediaKey().key(sample),
        conv_minhash=minhash("\n".join(turns), config.minhash),
        turn_minhash=[minhash(t, config.minhash) for t in turns] if config.text_level == "turn" else [],
        questions=[fuzzy_text(t.value) for t in sample.conversations if t.role == "human"],
        video_ids=video_ids_of(sample),
        image_ids=image_ids_of(sample),
        video_sha256=sorted({m.ref["sha256"] for m in sample.media if m.kind == "video" and m.ref}),
    )


def _whole_video_slot(m: Media, max_frames: int) -> SlotHash:
    """A clip or a video reference: up to ``max_frames`` of its frames, uniformly chosen, hashed
    from the pixels the adapter kept (a clip) or decodes on request (a reference), else from the
    clip's bytes."""
    n = len(m.frames or [])
    pick = np.unique(np.linspace(0, n - 1, min(max_frames, n)).round().astype(int)).tolist() if n else []
    if callable(m.decoded):
        pixels = m.decoded([m.frames[i] for i in pick])
    elif m.decoded is not None:
        pixels = [m.decoded[i] for i in pick]
    elif m.kind == "clip" and m.data:
        from ..media.clips import decode_clip

        decoded = decode_clip(m.data)
        pixels = [decoded[i] for i in pick if i < len(decoded)]
    else:
        pixels = []
    hashes = hash_pixels(np.stack([shrink(Image.fromarray(p)) for p in pixels])).tolist() if pixels else []
    digest = m.ref["sha256"] if m.kind == "video" and m.ref else hashlib.sha256(m.data).hexdigest()
    return SlotHash(kind="video", phashes=[int(h) for h in hashes], sha256=[digest], pixels=_pixels(m))
