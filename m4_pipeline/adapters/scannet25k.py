"""ScanNet's ``scannet_frames_25k``: the recorded colour frames M4-Instruct's 3D images come from.

Layout (ScanNet's 25k-frame release, every 100th frame of each scan) [3P: loaders that read it]::

    scannet_frames_25k/<scene_id>/color/000000.jpg 000100.jpg ...   6-digit frame numbers
    scannet_frames_25k/<scene_id>/depth/000000.png   pose/000000.txt (4x4 camera-to-world)
    scannet_frames_25k/<scene_id>/intrinsics_color.txt  intrinsics_depth.txt   (per scene, 4x4)

It differs from a SensReader export (``color/<n>.jpg``, ``intrinsic/intrinsic_color.txt``) in
its zero-padded names and scene-level intrinsics. A pose of a frame where tracking failed holds
``-inf`` (as in ScanNet's exports): such frames are never chosen. Views are chosen by a recorded
strategy (:class:`~m4_pipeline.media.render3d.TrajectoryPoses`: ``views`` frames spread
uniformly over the scene's valid frames) and recorded in the media ``ops``. The intrinsics are
taken to describe ScanNet's 1296x968 colour camera and are scaled to each frame's own size [I:
whether the 25k frames were resized is not verified; ``intrinsics_size`` is a parameter].
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..errors import MediaError
from ..media.images import read_image_file
from ..media.render3d import TrajectoryPoses, read_matrix
from ..paths import SourceRoot
from ..sample import Media
from ..synthetic import scanner_poses, synthetic_image

FRAMES_25K = "scannet_frames_25k"
SCANNET_COLOR_SIZE = [1296, 968]


class Frames25kScene:
    """One scene of ``scannet_frames_25k``; the interface :class:`TrajectoryPoses` selects from."""

    def __init__(self, src: SourceRoot, root_rel: str, scene_id: str):
        self.src, self.scene_id = src, scene_id
        self.scene_rel = f"{root_rel.strip('/')}/{scene_id}" if root_rel.strip("/") else scene_id
        self._poses: dict[int, np.ndarray] | None = None

    def color_rel(self, frame: int) -> str:
        return f"{self.scene_rel}/color/{frame:06d}.jpg"

    def _valid(self) -> dict[int, np.ndarray]:
        """Frame number -> pose, for the frames with a colour image and a finite pose."""
        if self._poses is None:
            if not self.src.is_dir(self.scene_rel):
                raise MediaError(f"missing scene folder {self.scene_rel}", reason="missing_media")
            poses = {}
            for rel in self.src.glob(f"{self.scene_rel}/pose/*.txt"):
                stem = Path(rel).stem
                if not stem.isdigit() or not self.src.is_file(self.color_rel(int(stem))):
                    continue
                try:
                    poses[int(stem)] = read_matrix(self.src.file(rel, "pose"))
                except MediaError:  # -inf: tracking failed on this frame
                    continue
            self._poses = dict(sorted(poses.items()))
        return self._poses

    def pose_ids(self) -> list[int]:
        return list(self._valid())

    def pose(self, frame: int) -> np.ndarray:
        return self._valid()[frame]

    def intrinsics(self) -> np.ndarray:
        return read_matrix(self.src.file(f"{self.scene_rel}/intrinsics_color.txt", "intrinsics"))[:3, :3]


def frames25k_views(src: SourceRoot, scene: Frames25kScene, views: int, intrinsics_size: list[int]) -> tuple:
    """``(label, pose, intrinsics, jpeg bytes, size, op, path)`` of the chosen frames."""
    chosen = TrajectoryPoses(views).select(scene, "")
    k, out = scene.intrinsics(), []
    sx_src, sy_src = intrinsics_size
    for label, pose in chosen:
        rel = scene.color_rel(int(label))
        img = read_image_file(src.file(rel, "colour frame"), rel)
        sx, sy = img.size[0] / sx_src, img.size[1] / sy_src
        kk = [[float(k[0, 0]) * sx, 0.0, float(k[0, 2]) * sx], [0.0, float(k[1, 1]) * sy, float(k[1, 2]) * sy],
              [0.0, 0.0, 1.0]]  # fmt: skip
        out.append((label, pose.tolist(), kk, img.data, list(img.size), f"frames25k:trajectory:{views}", rel))
    return tuple(out)


def view_media(views: tuple) -> list[Media]:
    return [Media("view", slot, data, "jpg", pose=pose, intrinsics=k, size=size, ops=[f"{op}:{label}"])
            for slot, (label, pose, k, data, size, op, _) in enumerate(views)]  # fmt: skip


def write_frames25k_scene(root: Path, scene_id: str, *, frames: int = 9, seed: int = 0, bad_pose: int | None = None,
                          size: tuple[int, int] = (80, 60)) -> None:  # fmt: skip
    """One scene in the 25k layout: every 100th frame, a 4x4 intrinsics file, one ``-inf`` pose."""
    d = Path(root) / FRAMES_25K / scene_id
    for sub in ("color", "depth", "pose"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    k = np.array([[1170.19, 0, 647.75, 0], [0, 1170.19, 483.75, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    np.savetxt(d / "intrinsics_color.txt", k, fmt="%f")
    np.savetxt(d / "intrinsics_depth.txt", k / 2, fmt="%f")
    for n, pose in enumerate(scanner_poses(frames, seed)):
        name = f"{100 * n:06d}"
        if n == bad_pose:
            pose = np.full((4, 4), -np.inf)
        np.savetxt(d / "pose" / f"{name}.txt", pose, fmt="%f")
        buf = io.BytesIO()
        synthetic_image(seed + n, size).save(buf, "JPEG", quality=85)
        (d / "color" / f"{name}.jpg").write_bytes(buf.getvalue())
        synthetic_image(seed + n, (size[0] // 2, size[1] // 2)).convert("L").save(d / "depth" / f"{name}.png")
