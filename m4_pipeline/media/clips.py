"""The ``clip`` media mode: the sampled frames as one small deterministic H.264 mp4, and back."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from ..errors import MediaError
from ..sample import Media, frame_span
from .video import Frame, ffmpeg_binary, fit, iter_frames, probe

CLIP_CRF = 28  # x264 quality of clips: 100 frames at 384 px fit in a few hundred KB


def clip_media(frames: list[Frame], *, max_side: int | None, fps: float, source_fps: float | None) -> Media:
    """One H.264 mp4 holding exactly the sampled frames, in order (the ``clip`` media mode),
    played at ``fps``; ``source_fps`` is the source's rate (its frames' times, see
    :func:`frame_span`)."""
    if not frames:
        raise MediaError("no frames to put in a clip")
    pixels = [fit(f.pixels, max_side) for f in frames]
    if len({p.shape for p in pixels}) != 1:
        raise MediaError("the sampled frames differ in size: no single clip can hold them")
    h, w = pixels[0].shape[:2]
    if h % 2 or w % 2:  # yuv420p needs even sizes
        pixels = [np.ascontiguousarray(p[: h - h % 2, : w - w % 2]) for p in pixels]
        h, w = h - h % 2, w - w % 2
    data = encode_clip(pixels, fps=fps)
    span = frame_span([f.index for f in frames], [f.timestamp for f in frames], source_fps)
    media = Media("clip", 0, data, "mp4", size=[w, h], ops=[f"clip:h264:crf{CLIP_CRF}:{w}x{h}"], **span)
    media.decoded = pixels  # the dedup signature hashes these instead of decoding the clip
    return media


def encode_clip(pixels: list[np.ndarray], *, fps: float = 10.0) -> bytes:
    """Deterministic H.264 mp4 bytes (one thread, bit-exact container) of RGB frames."""
    import tempfile

    h, w = pixels[0].shape[:2]
    with tempfile.TemporaryDirectory(prefix="m4clip-") as tmp:
        out = Path(tmp) / "clip.mp4"
        cmd = [ffmpeg_binary(), "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
               "-r", f"{fps:g}", "-i", "-", "-c:v", "libx264", "-preset", "medium", "-crf", str(CLIP_CRF),
               "-pix_fmt", "yuv420p", "-threads", "1", "-bitexact", "-map_metadata", "-1", "-movflags", "+faststart",
               str(out)]  # fmt: skip
        done = subprocess.run(cmd, input=b"".join(np.ascontiguousarray(p).tobytes() for p in pixels),
                              capture_output=True)  # fmt: skip
        if done.returncode:
            raise MediaError(f"ffmpeg could not encode a clip: {done.stderr.decode(errors='replace')[-300:]}")
        return out.read_bytes()


def decode_clip(data: bytes) -> list[np.ndarray]:
    """Every frame of a clip's bytes (RGB), in order."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="m4clip-") as tmp:
        path = Path(tmp) / "clip.mp4"
        path.write_bytes(data)
        info = probe(path)
        return [f.pixels for f in iter_frames(path, list(range(info.num_frames)), info)]
