"""The pixels of a video slot, whatever way the build stored it.

A video slot is its JPEG frames, one H.264 clip of exactly the sampled frames, or a reference
to the source video with no pixels (see :class:`~m4_pipeline.sample.Media`). Readers of shards —
the trainer check, the report, the exports — get the frames here. A reference is resolved under
its data root (a build records each source's root in ``manifest.json``; ``--data-root
NAME=DIR`` overrides), confined to it like any source file, and checked against its recorded
size and sha256 before a frame is decoded.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import MediaError
from ..paths import SourceRoot
from ..sample import Media
from .clips import decode_clip
from .video import frame_files, iter_frames, probe

VIDEO_KINDS = ("clip", "video")


@dataclass
class DataRoots:
    """Data root name (a recipe source's name) -> folder, for video references."""

    roots: dict[str, Path] = field(default_factory=dict)
    _verified: dict = field(default_factory=dict, repr=False)

    @classmethod
    def for_shards(cls, shards: str | Path, overrides: dict[str, str] | None = None) -> DataRoots:
        """The roots a build recorded in the ``manifest.json`` beside its shards, then ``overrides``."""
        folder = Path(shards) if Path(shards).is_dir() else Path(shards).parent
        roots: dict[str, Path] = {}
        manifest = folder / "manifest.json"
        if manifest.is_file():
            try:
                roots = {k: Path(v) for k, v in (json.loads(manifest.read_text()).get("data_roots") or {}).items()}
            except (ValueError, AttributeError):
                roots = {}
        roots.update({k: Path(v) for k, v in (overrides or {}).items()})
        return cls(roots)

    def path(self, ref: dict) -> Path:
        """The referenced video (or frame folder), confined to its root and checked (size, sha256
        of the file; a frame folder's is checked by :func:`video_frames` over the frames used)."""
        root = self.roots.get(ref.get("root", ""))
        if root is None:
            raise MediaError(f"no data root {ref.get('root')!r} for {ref.get('path')} (give --data-root NAME=DIR)",
                             reason="missing_media")  # fmt: skip
        src = SourceRoot(root)
        path = src.path(ref["path"], "video")
        if not path.exists():
            raise MediaError(f"missing video: {ref['path']} under {root}", reason="missing_media")
        if path.is_file():
            key = (str(path), path.stat().st_size, path.stat().st_mtime_ns)
            if key not in self._verified:
                from ..writer import file_sha256

                if path.stat().st_size != ref.get("size") or file_sha256(path) != ref.get("sha256"):
                    raise MediaError(f"{ref['path']}: size or sha256 differs from the build's record (the source "
                                     f"video changed since)", reason="bad_media")  # fmt: skip
                self._verified[key] = True
        return path


def video_frames(media: list[Media], roots: DataRoots | None = None) -> list[np.ndarray]:
    """The RGB frames of one video slot, in order."""
    if not media:
        return []
    first = media[0]
    if first.kind == "clip":
        return decode_clip(first.data)
    if first.kind == "video":
        if roots is None:
            raise MediaError("a video reference needs the build's data roots", reason="missing_media")
        path = roots.path(first.ref)
        if path.is_dir():
            import hashlib

            files = frame_files(path)
            digest = hashlib.sha256()
            for i in first.frames:
                digest.update(files[i].read_bytes())
            if digest.hexdigest() != first.ref.get("sha256"):
                raise MediaError(f"{first.ref['path']}: the frames differ from the build's record", reason="bad_media")
        return [f.pixels for f in iter_frames(path, list(first.frames), probe(path))]
    from PIL import Image

    return [np.asarray(Image.open(io.BytesIO(m.data)).convert("RGB")) for m in media]
