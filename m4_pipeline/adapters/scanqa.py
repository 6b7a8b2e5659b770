"""ScanQA (3D): question JSON over ScanNet v2 scenes, with multi-view images rendered by open3d.

Layout (ScanQA's ``data/qa`` and ScanNet's SensReader export)::

    qa/ScanQA_v1.0_train.json  _val.json  _test_w_obj.json  _test_wo_obj.json
        [{scene_id, object_ids, object_names, question_id, question, answers}, ...]
    scans/<scene_id>/<scene_id>_vh_clean_2.ply    mesh with vertex colours
    scans/<scene_id>/<scene_id>.txt               meta: "key = value" lines (colorWidth, ...)
    scans/<scene_id>/pose/<n>.txt                 4x4 camera-to-world
    scans/<scene_id>/intrinsic/intrinsic_color.txt   4x4
    scans/<scene_id>/color/<n>.jpg  depth/<n>.png

Views: ``views`` camera poses (spread uniformly over the recorded trajectory, or orbiting the
scene), rendered from the mesh at ``render_size``; or, with ``view_source: frames``, the recorded
colour frames at the trajectory poses; or, with ``view_source: frames25k``, the frames of
ScanNet's ``scannet_frames_25k`` release (6-digit names, per-scene intrinsics; see
:mod:`.scannet25k`), which is where M4-Instruct's 3D images come from, named in the record as
the release names them (``scannet_frames_25k/<scene>/color/000100.jpg``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import BuildError
from ..media.images import encode_jpeg, read_image_file
from ..media.render3d import POSE_STRATEGIES, ScanNetScene, TrajectoryPoses, ViewRenderer, _open3d
from ..sample import Media, Sample
from ..synthetic import room_mesh, scanner_poses, synthetic_image
from ..templates import render
from . import fields as F
from .base import Adapter, RawRecord, SourceError, SourceParams
from .scannet25k import FRAMES_25K, SCANNET_COLOR_SIZE, Frames25kScene, frames25k_views, view_media
from .scannet25k import write_frames25k_scene as _write_25k


@dataclass
class Params(SourceParams):
    splits: list[str] = field(default_factory=lambda: ["train"])
    views: int = 4  # views per sample: not published for M4-Instruct
    view_poses: str = "trajectory"  # trajectory (recorded camera poses) | orbit (around the scene)
    view_source: str = "render"  # render: from the mesh | frames: the recorded colour frames (trajectory only)
    # | frames25k: the frames of scannet_frames_25k (trajectory only)
    frames25k_dir: str = FRAMES_25K
    intrinsics_size: list[int] = field(default_factory=lambda: list(SCANNET_COLOR_SIZE))  # frames25k [I]
    render_size: list[int] = field(default_factory=lambda: [640, 480])  # width, height
    qa_dir: str = "qa"
    scans_dir: str = "scans"
    image_prefix: str = "scannet"
    dataset_name: str = "ScanQA"
    prompt: str = "{_images}\n{question}\nAnswer the question using a single word or phrase."
    task_instruction: str = ""

    def __post_init__(self):
        if self.view_poses not in POSE_STRATEGIES or self.view_source not in ("render", "frames", "frames25k"):
            raise BuildError(f"scanqa: view_poses {self.view_poses!r} must be one of {sorted(POSE_STRATEGIES)} and "
                             f"view_source {self.view_source!r} one of render, frames, frames25k")  # fmt: skip


def scaled_intrinsics(k: np.ndarray, source_size, size) -> list[list[float]]:
    """Colour intrinsics (for ``source_size``) for an image of ``size``: focal lengths and
    principal point scale with the image."""
    sx, sy = size[0] / source_size[0], size[1] / source_size[1]
    return [[float(k[0, 0]) * sx, 0.0, float(k[0, 2]) * sx], [0.0, float(k[1, 1]) * sy, float(k[1, 2]) * sy],
            [0.0, 0.0, 1.0]]  # fmt: skip


class ScanQA(Adapter):
    name = "scanqa"
    family = "m4"
    Params = Params
    description = "ScanQA 3D QA over ScanNet scenes: views rendered (open3d) or recorded (scannet_frames_25k)"
    reader = "json"

    def annotation_files(self) -> list[str]:
        return [f"{self.params.qa_dir}/ScanQA_v1.0_{split}.json" for split in self.params.splits]

    def source_id(self, item) -> str:
        return F.ident(item.data, "question_id", item.locator) if isinstance(item.data, dict) else ""

    def preflight(self) -> None:
        if self.params.view_source == "render":
            _open3d()  # open3d missing stops the build here (BuildError), not once per record

    def _render(self, scene: ScanNetScene, key: str) -> tuple:
        """Rendered views of one scene (questions on a scene share its trajectory views)."""
        p = self.params
        chosen = POSE_STRATEGIES[p.view_poses](p.views).select(scene, key)
        k, src_size, size = scene.intrinsics(), scene.color_size(), tuple(p.render_size)
        images = ViewRenderer().render(scene.mesh_path, [pose for _, pose in chosen], k, src_size, size)
        k_out = [[k[0, 0] * size[0] / src_size[0], 0.0, (size[0] - 1) / 2],
                 [0.0, k[1, 1] * size[1] / src_size[1], (size[1] - 1) / 2], [0.0, 0.0, 1.0]]  # fmt: skip
        return tuple((label, pose.tolist(), k_out, encode_jpeg(img), list(size), f"render:{p.view_poses}")
                     for (label, pose), img in zip(chosen, images))  # fmt: skip

    def _recorded(self, scene: ScanNetScene) -> tuple:
        """The recorded colour frames at the chosen trajectory poses, as M4-Instruct's 3D images
        (from ``scannet_frames_25k``) are: real photos, not renders; the intrinsics are scaled
        to the frame's own size."""
        k, src_size = scene.intrinsics(), scene.color_size()
        out = []
        for label, pose in TrajectoryPoses(self.params.views).select(scene, ""):
            rel = scene.rel("color", f"{label}.jpg")
            img = read_image_file(self.src.file(rel, "colour frame"), rel)
            out.append((label, pose.tolist(), scaled_intrinsics(k, src_size, img.size), img.data, list(img.size),
                        "frame"))  # fmt: skip
        return tuple(out)

    def to_sample(self, record: RawRecord) -> Sample:
        p = self.params
        where = record.locator
        scene_id = F.ident(record.data, "scene_id", where)
        question = F.text(record.data, "question", where)
        answers = F.texts(record.data, "answers", where) if record.data.get("answers") else None
        if not answers:
            raise SourceError(f"{where}: no answers (a test split?)")
        ctx = {"question": question}
        if p.view_source == "frames25k":
            s25k = Frames25kScene(self.src, p.frames25k_dir, scene_id)
            views25k = self.cached(("frames25k", scene_id),
                                   lambda: frames25k_views(self.src, s25k, p.views, p.intrinsics_size))  # fmt: skip
            human = render(p.prompt, {**ctx, "_images": "<image>" * len(views25k)}, where)
            return self.m4_sample(record, [("human", human), ("gpt", answers[0])], images=[v[-1] for v in views25k],
                                  media=view_media(views25k), task_instruction=p.task_instruction,
                                  split=_split_of(record.source_file))  # fmt: skip
        scene = ScanNetScene(self.src, f"{p.scans_dir}/{scene_id}", scene_id)
        if not self.src.is_dir(scene.scene_rel):
            raise SourceError(f"{where}: missing scene folder {scene.scene_rel}", reason="missing_media")
        if p.view_source == "frames":
            views = self.cached(("frames", scene_id), lambda: self._recorded(scene))
        else:  # trajectory views are the same for every question on a scene; orbit views follow the sample key
            seed_key = self.key_for(record) if p.view_poses == "orbit" else ""
            views = self.cached(("render", scene_id, seed_key), lambda: self._render(scene, seed_key))
        media = [Media("view", slot, data, "jpg", pose=pose, intrinsics=k, size=size, ops=[f"{op}:{label}"])
                 for slot, (label, pose, k, data, size, op) in enumerate(views)]  # fmt: skip
        paths = [f"{p.image_prefix}/{scene_id}/view_{label}.jpg" for label, *_ in views]
        ctx["_images"] = "<image>" * len(media)
        human = render(p.prompt, ctx, where)
        return self.m4_sample(record, [("human", human), ("gpt", answers[0])], images=paths, media=media,
                              task_instruction=p.task_instruction, split=_split_of(record.source_file))  # fmt: skip

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        _write_scannet_miniature(root, seed=seed)


def _split_of(rel: str) -> str:
    return Path(rel).stem.rsplit("_", 1)[-1]


QUESTIONS = [
    ("What is in the corner of the room?", ["a box"], "box"),
    ("What color is the floor?", ["brown"], "floor"),
    ("How many boxes are on the floor?", ["four"], "box"),
]


def _write_scannet_miniature(root: Path, *, scenes: int = 2, frames: int = 12, seed: int = 0) -> None:
    """A small ScanQA over ScanNet-layout scenes (mesh, poses, intrinsics, colour/depth frames),
    and the same scenes in the ``scannet_frames_25k`` layout (one with a failed-tracking pose)."""
    import open3d as o3d

    root = Path(root)
    (root / "qa").mkdir(parents=True, exist_ok=True)
    width, height = 1296, 968
    k = np.array([[1170.19, 0, 647.75, 0], [0, 1170.19, 483.75, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    for split, offset in (("train", 0), ("val", 600)):
        items = []
        for s in range(scenes):
            scene_id = f"scene{offset + s:04d}_00"
            d = root / "scans" / scene_id
            for sub in ("pose", "intrinsic", "color", "depth"):
                (d / sub).mkdir(parents=True, exist_ok=True)
            o3d.io.write_triangle_mesh(str(d / f"{scene_id}_vh_clean_2.ply"), room_mesh(seed + offset + s))
            (d / f"{scene_id}.txt").write_text(
                "axisAlignment = 1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1\n"
                f"colorHeight = {height}\ncolorWidth = {width}\ndepthHeight = 480\ndepthWidth = 640\n"
                f"fx_color = {k[0, 0]}\nfy_color = {k[1, 1]}\nmx_color = {k[0, 2]}\nmy_color = {k[1, 2]}\n"
                f"numColorFrames = {frames}\nsceneType = Living room / Lounge\n"
            )
            for name in ("intrinsic_color", "intrinsic_depth"):
                np.savetxt(d / "intrinsic" / f"{name}.txt", k, fmt="%f")
            for name in ("extrinsic_color", "extrinsic_depth"):
                np.savetxt(d / "intrinsic" / f"{name}.txt", np.eye(4), fmt="%f")
            for n, pose in enumerate(scanner_poses(frames, seed + offset + s)):
                np.savetxt(d / "pose" / f"{n}.txt", pose, fmt="%f")
                synthetic_image(n, (64, 48)).save(d / "color" / f"{n}.jpg", "JPEG")
                synthetic_image(n, (32, 24)).convert("L").save(d / "depth" / f"{n}.png")
            _write_25k(root, scene_id, frames=frames // 2 + s, seed=seed + offset + s, bad_pose=1 if s == 0 else None)
            for q, (question, answers, obj_name) in enumerate(QUESTIONS):
                items.append({
                    "answers": answers, "object_ids": [q + 1], "object_names": [obj_name],
                    "question": question, "question_id": f"{split}-{scene_id[:-3]}-{q}", "scene_id": scene_id,
                })  # fmt: skip
        (root / "qa" / f"ScanQA_v1.0_{split}.json").write_text(json.dumps(items))
