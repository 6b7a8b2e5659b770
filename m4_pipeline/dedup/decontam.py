"""Decontamination: index benchmark media and questions, flag training samples that share them.

The index holds, per benchmark item: each image file's sha256 and pHash, each video's id,
file sha256 and the pHashes of a few uniformly chosen frames, each question's fuzzy text and
MinHash, and dataset image ids (COCO ids for RefCOCO). A training signature is flagged with one
row per (benchmark, training key, benchmark item, reason):

    image_exact     a media member's bytes equal a benchmark image file
    image_near      an image slot within ``image_threshold`` pHash bits of a benchmark image
    image_id        the record names a benchmark's dataset image (``coco:<id>``)
    video_id        the record's video id (file stem / frame folder) is a benchmark video's
    video_file      a known source-video sha256 equals a benchmark video file's
    video_frames    >= ``frame_matches`` frames of a video slot near one benchmark video's frames
    question_exact  a human turn equals a benchmark question (fuzzy-normalized)
    question_near   a human turn's MinHash Jaccard with a benchmark question >= threshold

Files a benchmark names but that are missing or unreadable are listed in ``index.missing``
and logged: an index never shrinks silently.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import MediaError
from ..writer import file_sha256
from .bands import BandIndex
from .config import DecontamConfig
from .evalsets import BenchItem, read_evalset
from .phash import phash_bytes, phash_images
from .signature import SampleSignature
from .text import MinHashIndex, fuzzy_text, minhash

log = logging.getLogger(__name__)


@dataclass
class IndexedImage:
    benchmark: str
    item_id: str
    path: str
    sha256: str
    phash: int


@dataclass
class IndexedVideo:
    benchmark: str
    item_id: str
    path: str
    video_id: str
    sha256: str | None  # None when the file is missing
    frame_hashes: list[int] = field(default_factory=list)


@dataclass
class IndexedQuestion:
    benchmark: str
    item_id: str
    text: str  # fuzzy-normalized
    signature: np.ndarray


@dataclass
class BenchmarkIndex:
    images: list[IndexedImage] = field(default_factory=list)
    videos: list[IndexedVideo] = field(default_factory=list)
    questions: list[IndexedQuestion] = field(default_factory=list)
    image_ids: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # id -> (benchmark, item)
    items: dict[str, int] = field(default_factory=dict)  # benchmark -> item count
    missing: list[dict] = field(default_factory=list)  # {benchmark, item_id, path, reason}


def hash_video_frames(path: Path, num_frames: int) -> list[int]:
    """pHashes of ``num_frames`` uniformly chosen frames (decoded with the pipeline's readers)."""
    from ..media.video import probe, read_frames

    info = probe(path)
    indices = np.unique(np.linspace(0, info.num_frames - 1, min(num_frames, info.num_frames)).round().astype(int))
    frames = read_frames(path, indices.tolist(), info)
    return [int(h) for h in phash_images([Image.fromarray(f.pixels) for f in frames])]


class _IndexBuilder:
    """Hashes each file once, however many benchmark items name it."""

    def __init__(self, config: DecontamConfig) -> None:
        self.config = config
        self.index = BenchmarkIndex()
        self._images: dict[Path, tuple[str, int] | None] = {}
        self._videos: dict[Path, tuple[str | None, list[int]]] = {}

    def _missing(self, item: BenchItem, path: Path, reason: str) -> None:
        log.warning("%s %s: %s (%s)", item.benchmark, item.item_id, path, reason)
        self.index.missing.append({"benchmark": item.benchmark, "item_id": item.item_id, "path": str(path),
                                   "reason": reason})  # fmt: skip

    def _image(self, path: Path) -> tuple[str, int] | str:
        if path not in self._images:
            if not path.is_file():
                return "missing_file"
            data = path.read_bytes()
            try:
                self._images[path] = (hashlib.sha256(data).hexdigest(), int(phash_bytes([data])[0]))
            except MediaError:
                self._images[path] = None
        return self._images[path] or "unreadable_image"

    def _video(self, item: BenchItem, path: Path) -> tuple[str | None, list[int]]:
        if path not in self._videos:
            if not path.is_file():
                self._missing(item, path, "missing_file")
                self._videos[path] = (None, [])
            else:
                frames: list[int] = []
                if self.config.video_frames:
                    try:
                        frames = hash_video_frames(path, self.config.video_frames)
                    except MediaError as err:
                        self._missing(item, path, f"unreadable_video: {err}")
                self._videos[path] = (file_sha256(path), frames)
        return self._videos[path]

    def add(self, item: BenchItem) -> None:
        idx, cfg = self.index, self.config
        idx.items[item.benchmark] = idx.items.get(item.benchmark, 0) + 1
        for path in item.images:
            got = self._image(path)
            if isinstance(got, str):
                self._missing(item, path, got)
            else:
                idx.images.append(IndexedImage(item.benchmark, item.item_id, str(path), *got))
        for n, path in enumerate(item.videos):
            sha, frames = self._video(item, path)
            vid = item.video_ids[n] if n < len(item.video_ids) else path.stem.lower()
            idx.videos.append(IndexedVideo(item.benchmark, item.item_id, str(path), vid, sha, frames))
        for image_id in item.image_ids:
            idx.image_ids.setdefault(image_id, []).append((item.benchmark, item.item_id))
        for q in item.questions:
            text = fuzzy_text(q)
            if len(text.split()) >= cfg.min_question_words:
                idx.questions.append(IndexedQuestion(item.benchmark, item.item_id, text, minhash(q, cfg.minhash)))


def index_items(items: Iterable[BenchItem], config: DecontamConfig | None = None) -> BenchmarkIndex:
    builder = _IndexBuilder(config or DecontamConfig())
    for item in items:
        builder.add(item)
    return builder.index


def build_index(benchmarks: Mapping[str, str | Path], config: DecontamConfig | None = None) -> BenchmarkIndex:
    """Index benchmarks given as {registry name: root folder}, e.g. {"charades_sta": "/data/charades"}."""
    builder = _IndexBuilder(config or DecontamConfig())
    for name, root in benchmarks.items():
        for item in read_evalset(name, root):
            builder.add(item)
    return builder.index


# --- matching -------------------------------------------------------------------------------------


def _row(bench: str, item: str, sig: SampleSignature, reason: str, detail) -> dict:
    return {"benchmark": bench, "benchmark_item": item, "training_key": sig.key, "training_source": sig.source,
            "reason": reason, "detail": detail}  # fmt: skip


class ContaminationProbe:
    """A benchmark index prepared once for probing: lookup tables by sha256 and id, the
    benchmark hashes sorted per LSH band, the questions in a MinHash LSH. Training signatures
    only probe it (a worker builds one per build and probes each unit's samples); they are never
    compared with each other."""

    def __init__(self, index: BenchmarkIndex, config: DecontamConfig | None = None):
        self.index, self.cfg = index, config or DecontamConfig()
        self.images_by_sha: dict[str, list[IndexedImage]] = defaultdict(list)
        for im in index.images:
            self.images_by_sha[im.sha256].append(im)
        self.image_hashes = BandIndex(
            np.asarray([im.phash for im in index.images], np.uint64), self.cfg.image_threshold
        )
        self.videos_by_id: dict[str, list[IndexedVideo]] = defaultdict(list)
        self.videos_by_sha: dict[str, list[IndexedVideo]] = defaultdict(list)
        frame_owner, frame_hashes = [], []
        for v, vid in enumerate(index.videos):
            self.videos_by_id[vid.video_id].append(vid)
            if vid.sha256:
                self.videos_by_sha[vid.sha256].append(vid)
            frame_owner += [v] * len(vid.frame_hashes)
            frame_hashes += vid.frame_hashes
        self.frame_owner = frame_owner
        self.frame_hashes = BandIndex(np.asarray(frame_hashes, np.uint64), self.cfg.image_threshold)
        self.questions_by_text: dict[str, list[IndexedQuestion]] = defaultdict(list)
        self.questions = MinHashIndex(self.cfg.question_threshold, self.cfg.minhash)
        for n, q in enumerate(index.questions):
            self.questions_by_text[q.text].append(q)
            self.questions.add(n, q.signature)

    def rows(self, sigs: Sequence[SampleSignature]) -> list[dict]:
        """One row per (benchmark, benchmark item, training key, reason), sorted."""
        rows = self._media_rows(sigs) + self._video_rows(sigs) + self._text_rows(sigs)
        unique = {(r["benchmark"], r["benchmark_item"], r["training_key"], r["reason"]): r for r in rows}
        return [unique[k] for k in sorted(unique)]

    def _media_rows(self, sigs: Sequence[SampleSignature]) -> list[dict]:
        rows = []
        owners, hashes = [], []
        for s, sig in enumerate(sigs):
            for slot in sig.slots:
                for sha in slot.sha256:
                    rows += [_row(im.benchmark, im.item_id, sig, "image_exact", im.path)
                             for im in self.images_by_sha.get(sha, [])]  # fmt: skip
                if slot.kind == "image":
                    owners.append(s)
                    hashes.append(slot.phashes[0])
        for q, b, d in self.image_hashes.query(np.asarray(hashes, np.uint64)).tolist():
            im = self.index.images[b]
            rows.append(_row(im.benchmark, im.item_id, sigs[owners[q]], "image_near", {"hamming": d, "path": im.path}))
        return rows

    def _video_rows(self, sigs: Sequence[SampleSignature]) -> list[dict]:
        rows = []
        slot_owner, slot_frames = [], []
        for s, sig in enumerate(sigs):
            for i in sig.video_ids:
                rows += [_row(v.benchmark, v.item_id, sig, "video_id", i) for v in self.videos_by_id.get(i, [])]
            for sha in sig.video_sha256:
                rows += [_row(v.benchmark, v.item_id, sig, "video_file", sha) for v in self.videos_by_sha.get(sha, [])]
            for n, slot in enumerate(sig.slots):
                if slot.kind == "video":
                    slot_owner += [(s, n)] * len(slot.phashes)
                    slot_frames += slot.phashes
        matched: dict[tuple, set[int]] = defaultdict(set)
        for q, b, _ in self.frame_hashes.query(np.asarray(slot_frames, np.uint64)).tolist():
            matched[(slot_owner[q], self.frame_owner[b])].add(q)
        for ((s, _slot), v), frames in sorted(matched.items()):
            if len(frames) >= self.cfg.frame_matches:
                vid = self.index.videos[v]
                rows.append(_row(vid.benchmark, vid.item_id, sigs[s], "video_frames", {"frames": len(frames)}))
        return rows

    def _text_rows(self, sigs: Sequence[SampleSignature]) -> list[dict]:
        rows = []
        for sig in sigs:
            for image_id in sig.image_ids:
                rows += [_row(b, item, sig, "image_id", image_id) for b, item in self.index.image_ids.get(image_id, [])]
            for text in dict.fromkeys(sig.questions):
                if len(text.split()) < self.cfg.min_question_words:
                    continue
                exact = self.questions_by_text.get(text, [])
                rows += [_row(q.benchmark, q.item_id, sig, "question_exact", text) for q in exact]
                for n, sim in self.questions.query(minhash(text, self.cfg.minhash)):
                    q = self.index.questions[n]
                    if q.text != text:
                        rows.append(
                            _row(q.benchmark, q.item_id, sig, "question_near", {"jaccard": sim, "question": text})
                        )
        return rows


def find_contamination(
    index: BenchmarkIndex, sigs: Sequence[SampleSignature], config: DecontamConfig | None = None
) -> list[dict]:
    """One JSON-ready row per (benchmark, benchmark item, training key, reason), sorted."""
    return ContaminationProbe(index, config).rows(sigs)


def contamination_summary(rows: Iterable[dict], index: BenchmarkIndex) -> dict[str, dict]:
    """Per benchmark: items indexed, distinct training samples and benchmark items hit, by reason."""
    out = {b: {"items": n, "training_samples": set(), "items_hit": set(), "by_reason": defaultdict(set)}
           for b, n in index.items.items()}  # fmt: skip
    for r in rows:
        entry = out[r["benchmark"]]
        entry["training_samples"].add(r["training_key"])
        entry["items_hit"].add(r["benchmark_item"])
        entry["by_reason"][r["reason"]].add(r["training_key"])
    return {
        b: {
            "items": e["items"],
            "missing_files": sum(m["benchmark"] == b for m in index.missing),
            "training_samples": len(e["training_samples"]),
            "items_hit": len(e["items_hit"]),
            "by_reason": {k: len(v) for k, v in sorted(e["by_reason"].items())},
        }
        for b, e in sorted(out.items())
    }
