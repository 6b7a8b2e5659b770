"""Synthetic media for the miniature source copies: images, H.264 videos, ScanNet-like scenes.

Everything is seeded, so a miniature corpus is the same on every machine.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

PALETTE = [(230, 57, 70), (42, 157, 143), (233, 196, 106), (38, 70, 83), (244, 162, 97), (106, 76, 147)]


def synthetic_image(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A seeded picture of a few coloured shapes on a gradient."""
    rng = np.random.default_rng(seed)
    w, h = size
    base = np.linspace(0, 1, w)[None, :, None] * rng.integers(40, 200, 3)[None, None, :]
    canvas = np.broadcast_to(base, (h, w, 3)).astype(np.uint8)
    img = Image.fromarray(np.ascontiguousarray(canvas))
    draw = ImageDraw.Draw(img)
    for _ in range(4):
        x0, y0 = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
        x1, y1 = x0 + int(rng.integers(10, w // 2)), y0 + int(rng.integers(10, h // 2))
        colour = PALETTE[int(rng.integers(len(PALETTE)))]
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0, y0, x1, y1], fill=colour)
    return img


# Containers whose file name says which encoder they need; any other suffix (or none) is H.264 in
# the container the suffix names (mp4 when there is no suffix: files saved without an extension).
_ENCODERS = {".webm": ["-c:v", "libvpx-vp9", "-b:v", "0", "-crf", "40", "-deadline", "realtime"]}
_H264 = ["-c:v", "libx264", "-preset", "veryfast"]


def write_video(path: Path, *, seed: int, num_frames: int, fps: float = 30.0, size=(160, 96)) -> None:
    """A video whose frames show a moving box over a seeded background, via ffmpeg: H.264 in the
    container its suffix names, VP9 for ``.webm`` (SSv2's layout), mp4 for a name without suffix
    (downloaders that save ``video-<id>`` files)."""
    from .media.video import ffmpeg_binary

    w, h = size
    rng = np.random.default_rng(seed)
    background = np.asarray(synthetic_image(seed, size))
    frames = np.empty((num_frames, h, w, 3), np.uint8)
    for i in range(num_frames):
        frame = background.copy()
        x = int((i / max(1, num_frames - 1)) * (w - 24))
        frame[h // 3 : h // 3 + 24, x : x + 24] = PALETTE[int(rng.integers(len(PALETTE)))]
        frames[i] = frame
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        ffmpeg_binary(), "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
        "-s", f"{w}x{h}", "-r", str(fps), "-i", "-", *_ENCODERS.get(path.suffix.lower(), _H264),
        "-pix_fmt", "yuv420p", "-bitexact", "-map_metadata", "-1", *([] if path.suffix else ["-f", "mp4"]), str(path),
    ]  # fmt: skip
    subprocess.run(cmd, input=frames.tobytes(), check=True)


def room_mesh(seed: int):
    """A coloured room (floor and walls) with a few boxes in it, as an open3d TriangleMesh."""
    import open3d as o3d

    rng = np.random.default_rng(seed)
    parts = []

    def box(w, d, h, x, y, z, colour):
        m = o3d.geometry.TriangleMesh.create_box(w, d, h)
        m.translate((x, y, z))
        m.paint_uniform_color(np.array(colour) / 255.0)
        parts.append(m)

    box(6, 6, 0.05, 0, 0, -0.05, (150, 120, 90))  # floor
    box(6, 0.05, 2.5, 0, 6, 0, (200, 200, 210))  # walls
    box(0.05, 6, 2.5, 0, 0, 0, (190, 205, 200))
    box(6, 0.05, 2.5, 0, 0, 0, (210, 195, 200))
    box(0.05, 6, 2.5, 6, 0, 0, (200, 190, 180))
    for _ in range(4):
        w, d, h = rng.uniform(0.4, 1.2, 3)
        box(w, d, h, rng.uniform(1, 4.5), rng.uniform(1, 4.5), 0, PALETTE[int(rng.integers(len(PALETTE)))])
    mesh = parts[0]
    for p in parts[1:]:
        mesh += p
    mesh.compute_vertex_normals()
    return mesh


def scanner_poses(num: int, seed: int, centre=(3.0, 3.0), radius=2.2, height=1.5) -> list[np.ndarray]:
    """Camera poses on a circle at eye height, looking at the room's centre."""
    from .media.render3d import look_at_pose

    rng = np.random.default_rng(seed)
    start = rng.uniform(0, 2 * np.pi)
    poses = []
    for k in range(num):
        a = start + 2 * np.pi * k / num
        eye = (centre[0] + radius * np.cos(a), centre[1] + radius * np.sin(a), height)
        poses.append(look_at_pose(eye, (centre[0], centre[1], 0.6)))
    return poses
