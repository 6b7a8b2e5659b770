"""Video frame sampling: one class per strategy, and a reader that decodes only the chosen frames.

Strategies return source frame indices; :func:`read_frames` decodes them (decord first, ffmpeg
through ffmpeg-python when decord cannot open the file) and returns each frame with its exact
source index and timestamp.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MediaError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoInfo:
    num_frames: int
    fps: float
    width: int
    height: int


@dataclass
class Frame:
    index: int
    timestamp: float
    pixels: np.ndarray  # H x W x 3 uint8


class UniformSampler:
    """N frames spread uniformly over the whole video: LLaVA's ``linspace(0, total-1, N)`` (int)."""

    def __init__(self, num_frames: int):
        if num_frames < 1:
            raise ValueError("num_frames must be at least 1")
        self.num_frames = num_frames

    def indices(self, info: VideoInfo) -> list[int]:
        return np.linspace(0, info.num_frames - 1, self.num_frames, dtype=int).tolist()


class STRangeSampler:
    """ST-Align's rule: exactly N (100) frames over [start, end], both endpoints included.

    ``index_i = start + round(i / (N-1) * (end - start))``; a range outside the video is an error.
    """

    def __init__(self, start: int, end: int, num_frames: int = 100):
        if end < start:
            raise MediaError(f"frame range [{start}, {end}] ends before it starts", reason="invalid_annotation")
        self.start, self.end, self.num_frames = start, end, num_frames

    def indices(self, info: VideoInfo) -> list[int]:
        if self.start < 0 or self.end >= info.num_frames:
            raise MediaError(
                f"frame range [{self.start}, {self.end}] lies outside the video's {info.num_frames} frames",
                reason="invalid_annotation",
            )
        # Python's round (half to even), exactly as LLaVA-ST's loader computes it.
        duration = self.end - self.start + 1
        n = self.num_frames
        return [self.start + round((i / (n - 1)) * (duration - 1)) for i in range(n)]


def _decord():
    try:
        import decord
    except ImportError:  # pragma: no cover - depends on the install
        return None
    return decord


def probe(path: Path) -> VideoInfo:
    """Frame count, fps and size without decoding frames."""
    _check_file(path)
    decord = _decord()
    if decord is not None:
        try:
            vr = decord.VideoReader(str(path), num_threads=1)
            h, w = vr[0].shape[:2] if len(vr) else (0, 0)
            info = VideoInfo(len(vr), float(vr.get_avg_fps()), w, h)
            if info.num_frames > 0:
                return info
        except Exception as err:  # decord raises its own DECORDError and RuntimeError
            log.debug("decord cannot open %s (%s); trying ffmpeg", path, err)
    return _ffmpeg_probe(path)


def read_frames(path: Path, indices: list[int], info: VideoInfo | None = None) -> list[Frame]:
    """Decode just the given frames, in the order given (duplicates allowed)."""
    _check_file(path)
    info = info or probe(path)
    bad = [i for i in indices if not 0 <= i < info.num_frames]
    if bad:
        raise MediaError(f"{path.name}: frame {bad[0]} is outside the video's {info.num_frames} frames")
    decord = _decord()
    pixels = None
    if decord is not None:
        try:
            vr = decord.VideoReader(str(path), num_threads=1)
            unique = sorted(set(indices))
            batch = vr.get_batch(unique).asnumpy()
            by_index = dict(zip(unique, batch))
            pixels = [by_index[i] for i in indices]
        except Exception as err:
            log.debug("decord failed on %s (%s); using ffmpeg", path, err)
    if pixels is None:
        pixels = _ffmpeg_frames(path, indices, info)
    fps = info.fps or 1.0
    return [Frame(i, round(i / fps, 6), np.ascontiguousarray(p)) for i, p in zip(indices, pixels)]


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise MediaError(f"missing video: {path.name}", reason="missing_media")
    if path.stat().st_size == 0:
        raise MediaError(f"{path.name}: zero-byte video file")


def _ffmpeg_binary() -> str:
    import shutil

    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError as err:
        raise MediaError("no ffmpeg found: install Debian's ffmpeg or `pip install imageio-ffmpeg`") from err
    return imageio_ffmpeg.get_ffmpeg_exe()


def _ffmpeg_probe(path: Path) -> VideoInfo:
    """Count frames by decoding to null with ffmpeg (no ffprobe needed)."""
    import re
    import subprocess

    cmd = [_ffmpeg_binary(), "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v:0", "-f", "null", "-"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    err = proc.stderr
    frames = re.findall(r"frame=\s*(\d+)", err)
    stream = re.search(r"Video: .*?(\d{2,5})x(\d{2,5}).*?(\d+(?:\.\d+)?) fps", err)
    if proc.returncode != 0 or not frames or not stream or int(frames[-1]) == 0:
        last = err.strip().splitlines()[-1] if err.strip() else "no output"
        raise MediaError(f"{path.name}: cannot decode video ({last})")
    return VideoInfo(int(frames[-1]), float(stream.group(3)), int(stream.group(1)), int(stream.group(2)))


def _ffmpeg_frames(path: Path, indices: list[int], info: VideoInfo) -> list[np.ndarray]:
    import ffmpeg  # ffmpeg-python

    unique = sorted(set(indices))
    expr = "+".join(f"eq(n\\,{i})" for i in unique)
    try:
        out, _ = (
            ffmpeg.input(str(path))
            .filter("select", expr)
            .output("pipe:", format="rawvideo", pix_fmt="rgb24", vsync="passthrough")
            .run(cmd=_ffmpeg_binary(), capture_stdout=True, capture_stderr=True)
        )
    except ffmpeg.Error as err:
        raise MediaError(f"{path.name}: ffmpeg cannot decode: {err.stderr.decode(errors='replace')[-200:]}") from err
    frame_bytes = info.width * info.height * 3
    if frame_bytes == 0 or len(out) < frame_bytes * len(unique):
        raise MediaError(f"{path.name}: ffmpeg returned {len(out)} bytes for {len(unique)} frames")
    arr = np.frombuffer(out, np.uint8)[: frame_bytes * len(unique)].reshape(len(unique), info.height, info.width, 3)
    by_index = dict(zip(unique, arr))
    return [by_index[i] for i in indices]
