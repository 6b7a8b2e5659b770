"""Multi-view rendering of ScanNet-layout scenes with open3d's headless renderer.

Uses the legacy ``Visualizer`` with an invisible window: with no display it falls back to EGL
offscreen rendering (Mesa's software driver on CPU machines, the GPU's EGL where present).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import BuildError, MediaError
from ..paths import SourceRoot

log = logging.getLogger(__name__)

SCANNET_COLOR_SIZE = (1296, 968)  # ScanNet v2 colour frames


def _open3d():
    if os.environ.get("OMP_NUM_THREADS"):  # a one-CPU Ray task renders on one llvmpipe thread
        os.environ.setdefault("LP_NUM_THREADS", os.environ["OMP_NUM_THREADS"])
    try:
        import open3d
    except ImportError as err:
        raise BuildError(
            f"3D rendering needs open3d ({err}): pip install 'm4-pipeline[render]' (and Debian's libusb-1.0-0)"
        ) from err
    open3d.utility.set_verbosity_level(open3d.utility.VerbosityLevel.Error)
    return open3d


def read_matrix(path: Path) -> np.ndarray:
    try:
        mat = np.loadtxt(path, dtype=np.float64)
    except (OSError, ValueError) as err:
        raise MediaError(f"{path.name}: not a matrix: {err}", reason="invalid_annotation") from err
    if mat.shape != (4, 4) or not np.all(np.isfinite(mat)):
        raise MediaError(
            f"{path.name}: expected a finite 4x4 matrix, got shape {mat.shape}", reason="invalid_annotation"
        )
    return mat


class ScanNetScene:
    """A scene exported by ScanNet's SensReader: mesh, per-frame poses, colour intrinsics.

    Every file is read through the source's confined root (``src``); ``scene_rel`` is the
    scene's folder relative to it."""

    def __init__(self, src: SourceRoot | Path, scene_rel: str, scene_id: str):
        self.src = src if isinstance(src, SourceRoot) else SourceRoot(src)
        self.scene_rel, self.scene_id = scene_rel.strip("/") or ".", scene_id

    def rel(self, *parts: str) -> str:
        return "/".join([self.scene_rel, *parts])

    @property
    def mesh_path(self) -> Path:
        return self.src.file(self.rel(f"{self.scene_id}_vh_clean_2.ply"), "mesh")

    def pose_ids(self) -> list[int]:
        if not self.src.is_dir(self.rel("pose")):
            raise MediaError(f"{self.scene_id}: no pose/ folder", reason="missing_media")
        return sorted(int(Path(p).stem) for p in self.src.glob(self.rel("pose", "*.txt")) if Path(p).stem.isdigit())

    def pose(self, frame_id: int) -> np.ndarray:
        return read_matrix(self.src.file(self.rel("pose", f"{frame_id}.txt"), "pose"))

    def intrinsics(self) -> np.ndarray:
        return read_matrix(self.src.file(self.rel("intrinsic", "intrinsic_color.txt"), "intrinsics"))[:3, :3]

    def color_size(self) -> tuple[int, int]:
        meta = self.rel(f"{self.scene_id}.txt")
        if self.src.is_file(meta):
            text = self.src.read_bytes(meta).decode("utf-8", "replace")
            w = re.search(r"^colorWidth\s*=\s*(\d+)", text, re.M)
            h = re.search(r"^colorHeight\s*=\s*(\d+)", text, re.M)
            if w and h:
                return int(w.group(1)), int(h.group(1))
        return SCANNET_COLOR_SIZE


def look_at_pose(eye, target) -> np.ndarray:
    """A camera-to-world matrix (OpenCV axes: x right, y down, z forward) for a z-up world."""
    eye, target = np.asarray(eye, float), np.asarray(target, float)
    forward = target - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    if np.linalg.norm(right) < 1e-9:  # looking straight down or up
        right = np.array([1.0, 0.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, down, forward, eye
    return pose


# --- which poses to render: one class per strategy ----------------------------------------------


class TrajectoryPoses:
    """``views`` of the scene's recorded camera poses, spread uniformly over the trajectory."""

    def __init__(self, views: int):
        self.views = views

    def select(self, scene: ScanNetScene, key: str) -> list[tuple[str, np.ndarray]]:
        ids = scene.pose_ids()
        if not ids:
            raise MediaError(f"{scene.scene_id}: no camera poses", reason="missing_media")
        chosen = [ids[int(i)] for i in np.linspace(0, len(ids) - 1, self.views).round()]
        return [(str(i), scene.pose(i)) for i in chosen]


class OrbitPoses:
    """``views`` poses around the scene at eye height, looking inward at its centre; the start
    angle and small jitters are seeded by the sample key, so a sample always gets the same views."""

    def __init__(self, views: int, *, eye_height: float = 1.5, radius_fraction: float = 0.35):
        self.views, self.eye_height, self.radius_fraction = views, eye_height, radius_fraction

    def select(self, scene: ScanNetScene, key: str) -> list[tuple[str, np.ndarray]]:
        mesh = _load_mesh(str(scene.mesh_path))
        lo, hi = np.asarray(mesh.get_min_bound()), np.asarray(mesh.get_max_bound())
        centre = (lo + hi) / 2
        radius = self.radius_fraction * float(min(hi[0] - lo[0], hi[1] - lo[1]))
        rng = np.random.default_rng(int(hashlib.sha256(key.encode()).hexdigest()[:16], 16))
        start = rng.uniform(0, 2 * np.pi)
        out = []
        for k in range(self.views):
            a = start + 2 * np.pi * k / self.views + rng.uniform(-0.1, 0.1)
            eye = (centre[0] + radius * np.cos(a), centre[1] + radius * np.sin(a), lo[2] + self.eye_height)
            target = (centre[0], centre[1], lo[2] + 0.4 * self.eye_height)
            out.append((f"orbit{k}", look_at_pose(eye, target)))
        return out


POSE_STRATEGIES = {"trajectory": TrajectoryPoses, "orbit": OrbitPoses}


class ImageViewSelector:
    """View selection for datasets whose views are already images.

    ``select`` takes either named cameras (nuScenes' six surround cameras: ``{"CAM_FRONT": path,
    ...}``), returned in the recipe's ``order``, or an ordered list of frames (ALFRED's egocentric
    frames), of which ``views`` are taken uniformly."""

    NUSCENES_ORDER = [
        "CAM_FRONT_LEFT",
        "CAM_FRONT",
        "CAM_FRONT_RIGHT",
        "CAM_BACK_LEFT",
        "CAM_BACK",
        "CAM_BACK_RIGHT",
    ]

    def __init__(self, *, order: list[str] | None = None, views: int | None = None):
        self.order, self.views = order, views

    def select(self, available: dict[str, Path] | list[Path]) -> list[tuple[str, Path]]:
        if isinstance(available, dict):
            order = self.order or sorted(available)
            missing = [name for name in order if name not in available]
            if missing:
                raise MediaError(f"missing view(s) {missing}; have {sorted(available)}", reason="missing_media")
            chosen = [(name, available[name]) for name in order]
            return chosen[: self.views] if self.views else chosen
        if not available:
            raise MediaError("no views to select from", reason="missing_media")
        n = self.views or len(available)
        idx = np.linspace(0, len(available) - 1, n).round().astype(int)
        return [(str(i), available[i]) for i in idx]


@lru_cache(maxsize=4)
def _load_mesh(path: str):
    o3d = _open3d()
    mesh = o3d.io.read_triangle_mesh(path)
    if len(mesh.vertices) == 0:
        raise MediaError(f"{Path(path).name}: empty or unreadable mesh")
    if len(mesh.triangles) == 0:  # a truncated PLY keeps its vertices and loses its faces: renders blank
        raise MediaError(f"{Path(path).name}: mesh has {len(mesh.vertices)} vertices but no faces (truncated?)")
    if not mesh.has_vertex_normals():
        mesh.compute_vertex_normals()
    return mesh


class ViewRenderer:
    """Renders one mesh from given camera poses. Keeps one invisible window per process."""

    _windows: dict = {}  # (width, height) -> (visualizer, mesh path shown)

    def render(
        self,
        mesh_path: Path,
        poses: list[np.ndarray],
        intrinsics: np.ndarray,
        source_size: tuple[int, int],
        size: tuple[int, int],
    ) -> list[np.ndarray]:
        """Images (H x W x 3 uint8) of the mesh seen from each camera-to-world pose.

        ``intrinsics`` refer to ``source_size`` (the colour camera's width, height) and are
        rescaled to the output ``size``.
        """
        o3d = _open3d()
        if not mesh_path.is_file():
            raise MediaError(f"missing mesh: {mesh_path.name}", reason="missing_media")
        mesh = _load_mesh(str(mesh_path))
        vis = self._visualizer(tuple(size), mesh, str(mesh_path))
        width, height = size
        sx, sy = width / source_size[0], height / source_size[1]
        ctr = vis.get_view_control()
        images = []
        for pose in poses:
            params = ctr.convert_to_pinhole_camera_parameters()
            params.intrinsic = o3d.camera.PinholeCameraIntrinsic(
                width, height, intrinsics[0, 0] * sx, intrinsics[1, 1] * sy, (width - 1) / 2, (height - 1) / 2
            )
            params.extrinsic = np.linalg.inv(pose)
            if not ctr.convert_from_pinhole_camera_parameters(params, allow_arbitrary=True):
                raise MediaError("open3d refused the camera parameters")
            vis.poll_events()
            vis.update_renderer()
            buf = np.asarray(vis.capture_screen_float_buffer(do_render=True))
            image = (np.clip(buf, 0, 1) * 255).round().astype(np.uint8)
            # a view that shows (almost) nothing but the black background carries no content
            if np.count_nonzero(image.max(axis=2) > 2) < 0.001 * image.shape[0] * image.shape[1]:
                raise MediaError(f"{mesh_path.name}: view {len(images)} rendered blank (the camera sees no surface)")
            images.append(image)
        return images

    def _visualizer(self, size, mesh, mesh_key):
        """The process's offscreen window of this size, showing ``mesh``.

        Windows are kept for the life of the process: with EGL, a window created after another
        was destroyed renders blank, so they are never destroyed."""
        o3d = _open3d()
        cached = ViewRenderer._windows.get(size)
        if cached is None:
            vis = o3d.visualization.Visualizer()
            if not vis.create_window(visible=False, width=size[0], height=size[1]):
                raise BuildError("open3d could not open an offscreen window: install Mesa's EGL (libegl-mesa0)")
            vis.get_render_option().background_color = np.array([0.0, 0.0, 0.0])
            vis.get_render_option().light_on = True
            vis.add_geometry(mesh, reset_bounding_box=True)
        else:
            vis, shown = cached
            if shown != mesh_key:
                vis.clear_geometries()
                vis.add_geometry(mesh, reset_bounding_box=True)
        ViewRenderer._windows[size] = (vis, mesh_key)
        return vis
