"""3D view rendering throughput on one core, at 384x384 and 640x480, for ScanNet-sized meshes.

    .venv/bin/python benchmarks/render_views.py

Pins itself to one CPU (and Mesa's llvmpipe to one thread), builds the synthetic room mesh
subdivided to ~220K and ~900K vertices, and renders orbit views with our ViewRenderer (open3d's
legacy Visualizer, offscreen EGL, one window kept per process). The baseline, in the same run,
is the simplest CPU renderer without open3d: project the mesh's vertices with the same camera
and z-buffer them with numpy (a point splat). Target: >= 10 views/s at 384x384.
"""

from __future__ import annotations

import os

os.environ.setdefault("LP_NUM_THREADS", "1")  # llvmpipe: one rendering thread (set before open3d loads)
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from m4_pipeline.media.render3d import ViewRenderer  # noqa: E402
from m4_pipeline.synthetic import room_mesh, scanner_poses  # noqa: E402

K = np.array([[1170.19, 0, 647.75], [0, 1170.19, 483.75], [0, 0, 1]])
SOURCE = (1296, 968)


def point_splat(vertices: np.ndarray, colours: np.ndarray, pose: np.ndarray, size) -> np.ndarray:
    w, h = size
    world_to_cam = np.linalg.inv(pose)
    cam = vertices @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
    front = cam[:, 2] > 0.05
    cam, col = cam[front], colours[front]
    fx, fy = K[0, 0] * w / SOURCE[0], K[1, 1] * h / SOURCE[1]
    u = (fx * cam[:, 0] / cam[:, 2] + (w - 1) / 2).astype(int)
    v = (fy * cam[:, 1] / cam[:, 2] + (h - 1) / 2).astype(int)
    ok = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    u, v, z, col = u[ok], v[ok], cam[ok, 2], col[ok]
    order = np.argsort(-z)  # far to near: nearer points overwrite
    image = np.zeros((h, w, 3), np.uint8)
    image[v[order], u[order]] = (col[order] * 255).astype(np.uint8)
    return image


def main() -> None:
    import open3d as o3d

    work = Path(tempfile.mkdtemp(prefix="m4render-"))
    poses = scanner_poses(20, seed=1)
    print(f"{'mesh vertices':>14}{'size':>10}{'ours views/s':>14}{'splat views/s':>15}{'ratio':>7}")
    for iterations in (6, 7):
        mesh = room_mesh(0).subdivide_midpoint(number_of_iterations=iterations)
        path = work / f"room{iterations}.ply"
        o3d.io.write_triangle_mesh(str(path), mesh)
        verts, cols = np.asarray(mesh.vertices), np.asarray(mesh.vertex_colors)
        for size in ((384, 384), (640, 480)):
            renderer = ViewRenderer()
            renderer.render(path, poses[:1], K, SOURCE, size)  # window + mesh upload, not timed
            t = time.perf_counter()
            views = renderer.render(path, poses, K, SOURCE, size)
            ours = len(views) / (time.perf_counter() - t)
            assert all(v.std() > 5 for v in views), "blank render"
            t = time.perf_counter()
            for pose in poses:
                point_splat(verts, cols, pose, size)
            splat = len(poses) / (time.perf_counter() - t)
            print(f"{len(verts):>14,}{f'{size[0]}x{size[1]}':>10}{ours:>14.1f}{splat:>15.1f}{ours / splat:>7.2f}")


if __name__ == "__main__":
    main()
