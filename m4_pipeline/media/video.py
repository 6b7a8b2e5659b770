"""Video decoding: readers that decode only the chosen frames (the samplers that choose them are
in :mod:`.sampling`, clips of them in :mod:`.clips`).

:func:`iter_frames` decodes just the frames a sampler chose
those frames, a few at a time (so memory does not grow with the video's length or the number of
frames), from a video file (PyAV first, decord second, the ffmpeg CLI when neither can open it)
or from a folder of pre-extracted frames (the LLaVA-Hound layout). Frame ``i`` is the i-th frame
in presentation order, as decord (LLaVA's loaders) counts it. Every frame carries its exact
source index and its timestamp (the container's presentation time where PyAV or decord gives it,
so variable frame rate videos get true times). Rotation metadata is applied by every decoder.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import BuildError, MediaError
from ..sample import Media, frame_time
from .images import encode_jpeg
from .sampling import VideoInfo

log = logging.getLogger(__name__)

FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
DECODE_BATCH = 16  # frames decoded at once: bounds memory for 1080p and longer clips
DECODE_THREADS = 2  # decoder threads (0, FFmpeg's choice, took 3 GB on 1080p in decord); see _decode_threads
# PyAV and decord first index every packet of the file (one pass over its bytes; decord's memory
# also grows with the file's size, ~1.5x its bytes); larger files are read by seeking with ffmpeg,
# one frame at a time, in constant memory.
DECORD_MAX_BYTES = 256 * 1024 * 1024
SEEK_COST_FRAMES = 125  # frames an accurate seek decodes on average (half a typical 250-frame GOP)


@dataclass
class Frame:
    index: int
    timestamp: float
    pixels: np.ndarray  # H x W x 3 uint8


# --- probing and decoding ------------------------------------------------------------------------


def _decord():
    try:
        import decord
    except ImportError:  # pragma: no cover - depends on the install
        return None
    return decord


def _pyav():
    try:
        import av
    except ImportError:  # pragma: no cover - depends on the install
        return None
    return av


def probe(path: Path, *, folder_fps: float = 1.0) -> VideoInfo:
    """Frame count, fps and (display) size without decoding the video.

    ``folder_fps`` is the extraction rate of a frame folder (a folder does not record it)."""
    path = Path(path)
    if path.is_dir():
        files = frame_files(path)
        with _open_image(files[0]) as img:
            return VideoInfo(len(files), folder_fps, img.width, img.height)
    _check_file(path)
    pyav = _PyAVReader.open(path)
    if pyav is not None:
        return pyav.info
    reader = _DecordReader.open(path)
    if reader is not None and len(reader.vr) > 0:
        h, w = reader.vr[0].shape[:2]
        return VideoInfo(len(reader.vr), float(reader.vr.get_avg_fps()), w, h)
    return _ffmpeg_probe(path)


def iter_frames(path: Path, indices: list[int], info: VideoInfo | None = None) -> Iterator[Frame]:
    """Decode the given frames in the order given (repeats allowed), ``DECODE_BATCH`` at a time."""
    path = Path(path)
    info = info or probe(path)
    bad = [i for i in indices if not 0 <= i < info.num_frames]
    if bad:
        raise MediaError(f"{path.name}: frame {bad[0]} is outside the video's {info.num_frames} frames")
    if path.is_dir():
        files = frame_files(path)
        for i in indices:
            with _open_image(files[i]) as img:
                yield Frame(i, frame_time(i, info.fps), np.asarray(img.convert("RGB")))
        return
    reader = _PyAVReader.open(path) or _DecordReader.open(path)
    if reader is None:
        unique = len(set(indices))
        sparse = unique * SEEK_COST_FRAMES < info.num_frames
        large = path.stat().st_size > DECORD_MAX_BYTES
        reader = _FfmpegSeekReader(path, info) if large and sparse else _FfmpegReader(path, info)
    fps = info.fps or 1.0
    for i, pixels, ts in reader.frames(indices):
        yield Frame(i, round(ts, 6) if ts is not None else frame_time(i, fps), pixels)


def fit(pixels: np.ndarray, max_side: int | None) -> np.ndarray:
    """The frame scaled down (aspect kept, area resampling) so that its longer side is at most
    ``max_side``; smaller frames, and ``max_side`` 0 / None, are left as they are. Even sizes, so
    that an H.264 clip can hold them."""
    h, w = pixels.shape[:2]
    if not max_side or max(w, h) <= max_side:
        return pixels
    scale = max_side / max(w, h)
    size = (max(2, round(w * scale / 2) * 2), max(2, round(h * scale / 2) * 2))
    from PIL import Image

    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BOX))


def frame_media(frames: Iterable[Frame], *, one_slot: bool, max_side: int | None = None) -> list[Media]:
    """Frames as JPEG media carrying their source index and time: all in slot 0 (a video behind
    one placeholder) or one slot each (frames as images, one ``<image>`` per frame); scaled to
    ``max_side`` first (see :func:`fit`)."""
    out = []
    for i, f in enumerate(frames):
        pixels = fit(f.pixels, max_side)
        ops = [f"fit:{max_side}"] if pixels is not f.pixels else None
        out.append(Media("frame", 0 if one_slot else i, encode_jpeg(pixels), "jpg", frame_index=f.index,
                         timestamp=f.timestamp, size=[pixels.shape[1], pixels.shape[0]], ops=ops))  # fmt: skip
    return out


def frame_times(path: Path, indices: list[int], info: VideoInfo) -> list[float]:
    """The presentation times of frames without decoding them (a frame folder: index / fps)."""
    reader = None if Path(path).is_dir() else _PyAVReader.open(Path(path))
    if reader is not None and not reader.by_order:
        return [round(float(reader.pts[i]) * reader.time_base, 6) for i in indices]
    return [frame_time(i, info.fps or 1.0) for i in indices]


def read_frames(path: Path, indices: list[int], info: VideoInfo | None = None) -> list[Frame]:
    return list(iter_frames(path, indices, info))


def frame_files(folder: Path) -> list[Path]:
    """A frame folder's images in natural order (frame_2 before frame_10); symlinks are never
    followed (the folder itself was confined to its source root)."""
    files = [p for p in folder.iterdir() if p.suffix.lower() in FRAME_EXTENSIONS and not p.is_symlink()]
    if not files:
        raise MediaError(f"frame folder {folder.name} holds no images", reason="missing_media")
    return sorted(files, key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)])


def _open_image(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(path)
        img.load()
        return img
    except (UnidentifiedImageError, OSError) as err:
        raise MediaError(f"{path.parent.name}/{path.name}: cannot decode frame: {err}") from err


class _DecordReader:
    def __init__(self, vr):
        self.vr = vr

    @classmethod
    def open(cls, path: Path) -> _DecordReader | None:
        """decord's reader for ``path``, or None when decord is missing or cannot open it.

        The last two readers are kept: probing and then reading a video opens it once."""
        stat = path.stat()
        if _decord() is None or stat.st_size > DECORD_MAX_BYTES:
            return None
        return _open_decord(str(path), stat.st_size, stat.st_mtime_ns)

    def frames(self, indices: list[int]) -> Iterator[tuple[int, np.ndarray, float | None]]:
        for start in range(0, len(indices), DECODE_BATCH):
            chunk = indices[start : start + DECODE_BATCH]
            unique = sorted(set(chunk))
            batch = self.vr.get_batch(unique).asnumpy()
            times = self.vr.get_frame_timestamp(unique)[:, 0]
            by_index = {i: (np.ascontiguousarray(b), float(t)) for i, b, t in zip(unique, batch, times)}
            for i in chunk:
                yield i, *by_index[i]


def _decode_threads() -> int:
    """The task's CPU share where a scheduler says it (Ray sets OMP_NUM_THREADS per task), else
    DECODE_THREADS: a one-CPU task must not decode on two cores."""
    return int(os.environ.get("OMP_NUM_THREADS") or DECODE_THREADS)


@lru_cache(maxsize=2)
def _open_decord(path: str, size: int, mtime_ns: int) -> _DecordReader | None:
    try:
        return _DecordReader(_decord().VideoReader(path, num_threads=_decode_threads()))
    except Exception as err:  # decord raises DECORDError / RuntimeError
        log.debug("decord cannot open %s (%s); using ffmpeg", path, err)
        return None


class _PyAVReader:
    """FFmpeg's decoder in-process, through PyAV, reading only what the requested frames need.

    Opening indexes the video stream's packets (one demux pass, no decoding): their presentation
    times, sorted, number the frames as decord does, and the key frames among them tell where a
    decode can start. Each requested frame, in ascending order, is then reached by decoding on
    from the last decoded frame when no key frame lies between (a dense request streams through
    the file), or else by seeking to its key frame (a sparse request decodes one partial group of
    pictures per frame) -- always the fewer decoded frames of the two. Only requested frames are
    converted to RGB; the decoder uses ``_decode_threads()`` threads."""

    def __init__(self, path: Path, container, pts: np.ndarray, keys: np.ndarray, *, by_order: bool = False):
        self.path, self.container = path, container
        self.stream = container.streams.video[0]
        self.pts, self.keys = pts, keys  # frame -> presentation time (stream units); key frame indices
        self.time_base = float(self.stream.time_base)
        self._decoded: Iterator | None = None  # the decoder's output since the last seek
        self._last = -1  # index of the last frame decoded (-1: none since the last seek)
        # AVI stores no presentation times: with B-frames its packet times are decode times, so
        # frames are numbered by the decoder's output order and only ever decoded forward
        self.by_order = by_order
        self._seekable = not by_order  # False once a seek landed past its key frame: then only decode forward
        self.decoded = 0  # frames the decoder produced (what the seek-or-continue choice minimizes)
        pixels = next(self._decode([0]))[1]
        rate = self.stream.average_rate or self.stream.guessed_rate or 0
        self.info = VideoInfo(len(pts), float(rate), pixels.shape[1], pixels.shape[0])

    @classmethod
    def open(cls, path: Path) -> _PyAVReader | None:
        """PyAV's reader for ``path``, or None when PyAV is missing or cannot read it (the last two
        readers are kept: probing and then reading a video opens and indexes it once)."""
        stat = path.stat()
        if _pyav() is None or stat.st_size > DECORD_MAX_BYTES:
            return None
        return _open_pyav(str(path), stat.st_size, stat.st_mtime_ns)

    def frames(self, indices: list[int]) -> Iterator[tuple[int, np.ndarray, float | None]]:
        for start in range(0, len(indices), DECODE_BATCH):
            chunk = indices[start : start + DECODE_BATCH]
            by_index = dict(self._decode(sorted(set(chunk))))
            for i in chunk:
                ts = i / self.info.fps if self.by_order and self.info.fps else float(self.pts[i]) * self.time_base
                yield i, by_index[i], ts

    def _decode(self, wanted: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        """RGB pixels of the ``wanted`` frames (ascending, unique)."""
        for t in wanted:
            key = int(self.keys[max(0, np.searchsorted(self.keys, t, side="right") - 1)])
            if not self._seekable:
                if t <= self._last or self._decoded is None:
                    self._rewind()
            elif t <= self._last or key > self._last:  # behind us, or a key frame is nearer than we are
                self._seek(key)
            frame = self._decode_to(t)
            if frame is None and self._seekable:  # the seek landed past the frame (a coarse index)
                self._seekable = False
                self._rewind()
                frame = self._decode_to(t)
            if frame is None:
                raise MediaError(f"{self.path.name}: the decoder returned no frame {t}")
            yield t, _rotated(frame.to_ndarray(format="rgb24"), frame.rotation)

    def _seek(self, index: int) -> None:
        self.container.seek(int(self.pts[index]), backward=True, any_frame=False, stream=self.stream)
        self._decoded, self._last = self.container.decode(self.stream), -1

    def _rewind(self) -> None:
        self.container.close()
        self.container = _pyav().open(str(self.path))
        self.stream = self.container.streams.video[0]
        _set_threads(self.stream)
        self._decoded, self._last = self.container.decode(self.stream), -1

    def _decode_to(self, t: int):
        for frame in self._decoded:
            self.decoded += 1
            if self.by_order:
                self._last += 1
                if self._last > t:
                    return None
                if self._last == t:
                    return frame
                continue
            if frame.pts is None:
                continue
            i = int(np.searchsorted(self.pts, frame.pts))
            if i >= len(self.pts) or self.pts[i] != frame.pts:
                continue  # not a frame of the index (never seen so far)
            if i > t:
                return None
            self._last = i
            if i == t:
                return frame
        return None


def _set_threads(stream) -> None:
    threads = _decode_threads()
    stream.codec_context.thread_count = threads
    stream.thread_type = "AUTO" if threads > 1 else "SLICE"


def _rotated(pixels: np.ndarray, rotation: float) -> np.ndarray:
    """Apply the display matrix's rotation (PyAV gives degrees counter-clockwise), as ffmpeg's
    and decord's autorotation do."""
    quarter = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(pixels, quarter)) if quarter else pixels


@lru_cache(maxsize=2)
def _open_pyav(path: str, size: int, mtime_ns: int) -> _PyAVReader | None:
    av = _pyav()
    try:
        container = av.open(path)
        if not container.streams.video:
            container.close()
            return None
        stream = container.streams.video[0]
        pts, keys = [], []
        for packet in container.demux(stream):
            if packet.size == 0:
                continue  # the demuxer's end-of-stream marker
            if packet.pts is None:  # no presentation times to number frames by: let decord count
                container.close()
                return None
            pts.append(packet.pts)
            keys.append(packet.is_keyframe)
        if not pts:
            container.close()
            return None
        order = np.argsort(np.asarray(pts, np.int64), kind="stable")
        sorted_pts = np.asarray(pts, np.int64)[order]
        key_frames = np.flatnonzero(np.asarray(keys, bool)[order])
        if len(np.unique(sorted_pts)) != len(sorted_pts):  # repeated times cannot tell frames apart
            container.close()
            return None
        _set_threads(stream)
        by_order = "avi" in container.format.name and bool(stream.codec_context.has_b_frames)
        keys = key_frames if len(key_frames) else np.zeros(1, int)
        return _PyAVReader(Path(path), container, sorted_pts, keys, by_order=by_order)
    except Exception as err:  # av.FFmpegError, MediaError (no first frame), ...
        log.debug("PyAV cannot read %s (%s); trying decord", path, err)
        return None


class _FfmpegReader:
    """Fallback decoder: one ffmpeg process, select filter, raw RGB frames read one at a time
    from its pipe (autorotated). Memory stays constant for sorted requests (what samplers give)."""

    def __init__(self, path: Path, info: VideoInfo):
        self.path, self.info = path, info

    def frames(self, indices: list[int]) -> Iterator[tuple[int, np.ndarray, float | None]]:
        unique = sorted(set(indices))
        if indices != sorted(indices):  # arbitrary order: decode once, then hand out in order
            by_index = dict(zip(unique, (px for _, px, _ in self.frames(unique))))
            for i in indices:
                yield i, by_index[i], None
            return
        import ffmpeg  # ffmpeg-python

        expr = _any_of([f"eq(n,{i})" for i in unique])  # ffmpeg-python escapes the commas
        w, h = self.info.width, self.info.height
        size = w * h * 3
        proc = (
            ffmpeg.input(str(self.path))
            .filter("select", expr)
            .output("pipe:", format="rawvideo", pix_fmt="rgb24", vsync="passthrough")
            .global_args("-v", "error", "-nostdin")
            .run_async(cmd=ffmpeg_binary(), pipe_stdout=True, pipe_stderr=True)
        )
        try:
            decoded: dict[int, np.ndarray] = {}
            for i in indices:
                if i not in decoded:
                    data = proc.stdout.read(size)
                    if size == 0 or len(data) < size:
                        tail = proc.stderr.read().decode(errors="replace")[-200:]
                        raise MediaError(
                            f"{self.path.name}: ffmpeg returned no frame {i} ({tail.strip() or 'end of stream'})"
                        )
                    decoded = {i: np.frombuffer(data, np.uint8).reshape(h, w, 3)}  # keep only the last
                yield i, decoded[i], None
        finally:
            proc.kill()
            proc.wait()


def _any_of(terms: list[str]) -> str:
    """A balanced sum of terms: ffmpeg's expression parser fails on long flat chains."""
    if len(terms) == 1:
        return terms[0]
    mid = len(terms) // 2
    return f"({_any_of(terms[:mid])}+{_any_of(terms[mid:])})"


class _FfmpegSeekReader:
    """For large files: one accurate seek and one decoded frame per index, in constant memory.

    Times come from the index and the average frame rate, so variable-frame-rate files are only
    approximately right on this path."""

    def __init__(self, path: Path, info: VideoInfo):
        self.path, self.info = path, info

    def frames(self, indices: list[int]) -> Iterator[tuple[int, np.ndarray, float | None]]:
        w, h = self.info.width, self.info.height
        for i in indices:
            t = i / (self.info.fps or 1.0)
            cmd = [ffmpeg_binary(), "-v", "error", "-nostdin", "-ss", f"{t:.6f}", "-i", str(self.path),
                   "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"]  # fmt: skip
            proc = subprocess.run(cmd, capture_output=True, timeout=600)
            if proc.returncode != 0 or len(proc.stdout) < w * h * 3:
                tail = proc.stderr.decode(errors="replace")[-200:]
                raise MediaError(f"{self.path.name}: ffmpeg cannot decode frame {i}: {tail}")
            yield i, np.frombuffer(proc.stdout[: w * h * 3], np.uint8).reshape(h, w, 3), None


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise MediaError(f"missing video: {path.name}", reason="missing_media")
    if path.stat().st_size == 0:
        raise MediaError(f"{path.name}: zero-byte video file")


@lru_cache(maxsize=1)
def ffmpeg_binary() -> str:
    """Debian's ffmpeg if present, else the static binary of the imageio-ffmpeg package."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError as err:
        raise BuildError("no ffmpeg found: install Debian's ffmpeg or `pip install imageio-ffmpeg`") from err
    return imageio_ffmpeg.get_ffmpeg_exe()


def _ffprobe(path: Path) -> VideoInfo | None:
    """Frame count from the container header (or a packet count), without decoding."""
    exe = shutil.which("ffprobe")
    if exe is None:
        return None
    entries = "stream=width,height,avg_frame_rate,nb_frames:stream_side_data=rotation"
    cmd = [exe, "-v", "error", "-select_streams", "v:0", "-show_entries", entries, "-of", "json", str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    try:
        stream = json.loads(proc.stdout)["streams"][0]
        num, den = (int(x) for x in stream["avg_frame_rate"].split("/"))
        frames, w, h = int(stream["nb_frames"]), int(stream["width"]), int(stream["height"])
    except (ValueError, KeyError, IndexError, ZeroDivisionError, json.JSONDecodeError):
        return None  # no header count: let the decoding probe count
    rotation = next((d.get("rotation", 0) for d in stream.get("side_data_list", []) if "rotation" in d), 0)
    if round(abs(float(rotation))) % 180 == 90:
        w, h = h, w  # decoders autorotate
    if frames <= 0 or den == 0 or num == 0:
        return None
    return VideoInfo(frames, num / den, w, h)


def _ffmpeg_probe(path: Path) -> VideoInfo:
    """ffprobe's header count when it has one, else count frames by decoding to null with ffmpeg."""
    quick = _ffprobe(path)
    if quick is not None:
        return quick
    cmd = [ffmpeg_binary(), "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v:0", "-f", "null", "-"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    err = proc.stderr
    frames = re.findall(r"frame=\s*(\d+)", err)
    stream = re.search(r"Video: .*?(\d{2,5})x(\d{2,5}).*?(\d+(?:\.\d+)?) fps", err)
    if proc.returncode != 0 or not frames or not stream or int(frames[-1]) == 0:
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        raise MediaError(f"{path.name}: cannot decode video ({lines[-1] if lines else 'no output'})")
    w, h = int(stream.group(1)), int(stream.group(2))
    rotation = re.search(r"rotation of (-?\d+(?:\.\d+)?) degrees", err)
    if rotation and round(abs(float(rotation.group(1)))) % 180 == 90:
        w, h = h, w  # ffmpeg autorotates its output
    return VideoInfo(int(frames[-1]), float(stream.group(3)), w, h)
