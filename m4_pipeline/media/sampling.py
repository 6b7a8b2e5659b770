"""Which frames of a video a sample takes: one class per strategy.

A sampler turns a :class:`VideoInfo` (frame count, rate, size) into source frame indices;
:func:`.video.iter_frames` decodes just those.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import MediaError


@dataclass(frozen=True)
class VideoInfo:
    num_frames: int
    fps: float
    width: int
    height: int

    def provenance(self) -> str:
        """The probe result as a provenance op: the frame count and rate every time conversion used."""
        return f"video_probe: {self.num_frames} frames at {self.fps:g} fps, {self.width}x{self.height}"


class UniformSampler:
    """N frames spread uniformly over the whole video: LLaVA's ``linspace(0, total-1, N)`` (int).

    This is the rule of LLaVA-NeXT's loader for LLaVA-Hound frame folders (N = 10 there)."""

    def __init__(self, num_frames: int):
        if num_frames < 1:
            raise ValueError("num_frames must be at least 1")
        self.num_frames = num_frames

    def indices(self, info: VideoInfo) -> list[int]:
        return np.linspace(0, info.num_frames - 1, self.num_frames, dtype=int).tolist()


class FpsSampler:
    """LLaVA-NeXT's rule for video files: every ``round(avg_fps / video_fps)``-th frame; when that
    gives more than ``frames_upbound`` frames (or ``force_sample``), ``frames_upbound`` uniform
    frames by ``linspace(0, total-1, frames_upbound)`` instead."""

    def __init__(self, video_fps: float = 1.0, frames_upbound: int = 32, force_sample: bool = False):
        if video_fps <= 0:
            raise ValueError("video_fps must be positive")
        self.video_fps, self.frames_upbound, self.force_sample = video_fps, frames_upbound, force_sample

    def indices(self, info: VideoInfo) -> list[int]:
        step = max(1, round(info.fps / self.video_fps))
        chosen = list(range(0, info.num_frames, step))
        if self.frames_upbound > 0 and (len(chosen) > self.frames_upbound or self.force_sample):
            chosen = np.linspace(0, info.num_frames - 1, self.frames_upbound, dtype=int).tolist()
        return chosen


class STRangeSampler:
    """ST-Align's rule: exactly N (100) frames over [start, end], both endpoints included.

    ``index_i = start + round(i / (N-1) * (end - start))`` with Python's round, as LLaVA-ST's
    loader computes it; a range outside the video is an error."""

    def __init__(self, start: int, end: int, num_frames: int = 100):
        if end < start:
            raise MediaError(f"frame range [{start}, {end}] ends before it starts", reason="invalid_annotation")
        if num_frames < 2:
            raise ValueError("num_frames must be at least 2")
        self.start, self.end, self.num_frames = start, end, num_frames

    def indices(self, info: VideoInfo) -> list[int]:
        if self.start < 0 or self.end >= info.num_frames:
            raise MediaError(
                f"frame range [{self.start}, {self.end}] lies outside the video's {info.num_frames} frames",
                reason="invalid_annotation",
            )
        duration = self.end - self.start + 1
        n = self.num_frames
        return [self.start + round((i / (n - 1)) * (duration - 1)) for i in range(n)]


class ExplicitFrames:
    """Frames given by their indices, in the order given."""

    def __init__(self, frame_ids: list[int]):
        self.frame_ids = [int(i) for i in frame_ids]

    def indices(self, info: VideoInfo) -> list[int]:
        bad = [i for i in self.frame_ids if not 0 <= i < info.num_frames]
        if bad:
            raise MediaError(
                f"frame {bad[0]} is outside the video's {info.num_frames} frames", reason="invalid_annotation"
            )
        return list(self.frame_ids)


class ExplicitTimestamps:
    """Frames nearest to the given times in seconds (``round(t * fps)``), in the order given."""

    def __init__(self, seconds: list[float]):
        self.seconds = [float(s) for s in seconds]

    def indices(self, info: VideoInfo) -> list[int]:
        duration = info.num_frames / info.fps
        bad = [s for s in self.seconds if not 0 <= s <= duration]
        if bad:
            raise MediaError(f"time {bad[0]} s is outside the video's {duration:.3f} s", reason="invalid_annotation")
        return [min(info.num_frames - 1, round(s * info.fps)) for s in self.seconds]
