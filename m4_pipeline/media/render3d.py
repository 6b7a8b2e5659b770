"""Multi-view rendering of ScanNet-layout scenes with open3d's headless renderer.

Uses the legacy ``Visualizer`` with an invisible window: with no display it falls back to EGL
offscreen rendering (Mesa's software driver on CPU machines, the GPU's EGL where present).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import MediaError

log = logging.getLogger(__name__)

SCANNET_COLOR_SIZE = (1296, 968)  # ScanNet v2 colour frames


def _open3d():
    try:
        import open3d
    except ImportError as err:
        raise MediaError(
            "3D rendering needs open3d: pip install 'm4-pipeline[render]' (and Debian's libusb-1.0-0)",
            reason="missing_dependency",
        ) from err
    open3d.utility.set_verbosity_level(open3d.utility.VerbosityLevel.Error)
    return open3d


def read_matrix(path: Path) -> np.ndarray:
    try:
        mat = np.loadtxt(path, dtype=np.float64)
    except (OSError, ValueError) as err:
        raise MediaError(f"{path.name}: not a matrix: {err}", reason="invalid_annotation") from err
    if mat.shape != (4, 4) or not np.all(np.isfinite(mat)):
        raise MediaError(f"{path.name}: expected a finite 4x4 matrix, got shape {mat.shape}", reason="invalid_annotation")
    return mat


@dataclass
class ScanNetScene:
    """A scene exported by ScanNet's SensReader: mesh, per-frame poses, colour intrinsics."""

    scene_dir: Path
    scene_id: str

    @property
    def mesh_path(self) -> Path:
        return self.scene_dir / f"{self.scene_id}_vh_clean_2.ply"

    def pose_ids(self) -> list[int]:
        pose_dir = self.scene_dir / "pose"
        if not pose_dir.is_dir():
            raise MediaError(f"{self.scene_id}: no pose/ folder", reason="missing_media")
        return sorted(int(p.stem) for p in pose_dir.glob("*.txt") if p.stem.isdigit())

    def pose(self, frame_id: int) -> np.ndarray:
        return read_matrix(self.scene_dir / "pose" / f"{frame_id}.txt")

    def intrinsics(self) -> np.ndarray:
        return read_matrix(self.scene_dir / "intrinsic" / "intrinsic_color.txt")[:3, :3]

    def color_size(self) -> tuple[int, int]:
        meta = self.scene_dir / f"{self.scene_id}.txt"
        if meta.is_file():
            text = meta.read_text()
            w = re.search(r"^colorWidth\s*=\s*(\d+)", text, re.M)
            h = re.search(r"^colorHeight\s*=\s*(\d+)", text, re.M)
            if w and h:
                return int(w.group(1)), int(h.group(1))
        return SCANNET_COLOR_SIZE


@lru_cache(maxsize=4)
def _load_mesh(path: str):
    o3d = _open3d()
    mesh = o3d.io.read_triangle_mesh(path)
    if len(mesh.vertices) == 0:
        raise MediaError(f"{Path(path).name}: empty or unreadable mesh")
    if not mesh.has_vertex_normals():
        mesh.compute_vertex_normals()
    return mesh


class ViewRenderer:
    """Renders one mesh from given camera poses. Keeps one invisible window per process."""

    _window = None  # (visualizer, width, height, mesh path)

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
        vis = self._visualizer(size, mesh, str(mesh_path))
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
            images.append((np.clip(buf, 0, 1) * 255).round().astype(np.uint8))
        return images

    def _visualizer(self, size, mesh, mesh_key):
        o3d = _open3d()
        cached = ViewRenderer._window
        if cached is not None and cached[1:3] == size:
            vis = cached[0]
            if cached[3] != mesh_key:
                vis.clear_geometries()
                vis.add_geometry(mesh, reset_bounding_box=True)
        else:
            if cached is not None:
                cached[0].destroy_window()
            vis = o3d.visualization.Visualizer()
            if not vis.create_window(visible=False, width=size[0], height=size[1]):
                raise MediaError("open3d could not open an offscreen window (is Mesa's EGL installed?)")
            vis.get_render_option().background_color = np.array([0.0, 0.0, 0.0])
            vis.get_render_option().light_on = True
            vis.add_geometry(mesh, reset_bounding_box=True)
        ViewRenderer._window = (vis, size[0], size[1], mesh_key)
        return vis
