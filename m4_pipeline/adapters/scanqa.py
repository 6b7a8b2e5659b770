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
colour frames at the trajectory poses (what M4-Instruct's 3D images are).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..formats import m4_record
from ..media.images import encode_jpeg, read_image_file
from ..media.render3d import POSE_STRATEGIES, ScanNetScene, TrajectoryPoses, ViewRenderer
from ..sample import Media, Sample, Turn
from ..synthetic import room_mesh, scanner_poses, synthetic_image
from .base import Adapter, RawRecord, SourceError, require_fields


@dataclass
class Params:
    splits: list[str] = field(default_factory=lambda: ["train"])
    views: int = 4  # views per sample: not published for M4-Instruct
    view_poses: str = "trajectory"  # trajectory (recorded camera poses) | orbit (around the scene)
    view_source: str = "render"  # render: from the mesh | frames: the recorded colour frames (trajectory only)
    render_size: list[int] = field(default_factory=lambda: [640, 480])  # width, height
    qa_dir: str = "qa"
    scans_dir: str = "scans"
    image_prefix: str = "scannet"
    dataset_name: str = "ScanQA"
    prompt: str = "{question}\nAnswer the question using a single word or phrase."
    task_instruction: str = ""


@lru_cache(maxsize=16)
def _render(scene_dir: str, scene_id: str, strategy: str, views: int, size: tuple[int, int], key: str) -> tuple:
    """Rendered views of one scene (questions on a scene share its trajectory views)."""
    scene = ScanNetScene(Path(scene_dir), scene_id)
    chosen = POSE_STRATEGIES[strategy](views).select(scene, key)
    k = scene.intrinsics()
    src_size = scene.color_size()
    images = ViewRenderer().render(scene.mesh_path, [pose for _, pose in chosen], k, src_size, size)
    sx, sy = size[0] / src_size[0], size[1] / src_size[1]
    k_out = [[k[0, 0] * sx, 0.0, (size[0] - 1) / 2], [0.0, k[1, 1] * sy, (size[1] - 1) / 2], [0.0, 0.0, 1.0]]
    return tuple((label, pose.tolist(), k_out, encode_jpeg(img)) for (label, pose), img in zip(chosen, images))


@lru_cache(maxsize=16)
def _recorded(scene_dir: str, scene_id: str, views: int) -> tuple:
    """The recorded colour frames at the chosen trajectory poses, as M4-Instruct's 3D images
    (from ``scannet_frames_25k``) are: real photos, not renders."""
    scene = ScanNetScene(Path(scene_dir), scene_id)
    k = scene.intrinsics().tolist()
    out = []
    for label, pose in TrajectoryPoses(views).select(scene, ""):
        img = read_image_file(scene.scene_dir / "color" / f"{label}.jpg", f"{scene_id}/color/{label}.jpg")
        out.append((label, pose.tolist(), k, img.data, list(img.size)))
    return tuple(out)


class ScanQA(Adapter):
    name = "scanqa"
    family = "m4"
    Params = Params
    description = "ScanQA 3D question answering over ScanNet scenes, views rendered with open3d"

    def list_records(self):
        p = self.params
        for split in p.splits:
            rel = f"{p.qa_dir}/ScanQA_v1.0_{split}.json"
            for i, obj in enumerate(self.read_json_list(rel)):
                qid = obj.get("question_id") if isinstance(obj, dict) else None
                yield RawRecord(rel, f"index {i}", str(qid or f"{split}-{i}"), obj)

    def to_sample(self, record: RawRecord) -> Sample:
        p = self.params
        obj = record.data
        require_fields(obj, ("scene_id", "question", "question_id"), record.locator)
        if not obj.get("answers"):
            raise SourceError("invalid_annotation", f"{record.locator}: no answers (a test split?)")
        scene_dir = self.root / p.scans_dir / obj["scene_id"]
        if p.view_poses not in POSE_STRATEGIES or p.view_source not in ("render", "frames"):
            raise SourceError("invalid_annotation", f"view_poses {p.view_poses!r} / view_source {p.view_source!r}")
        if p.view_source == "frames":
            views = _recorded(str(scene_dir), obj["scene_id"], p.views)
            ops = "frame"
        else:
            self.require_file(f"{p.scans_dir}/{obj['scene_id']}/{obj['scene_id']}_vh_clean_2.ply", "mesh")
            # trajectory views are the same for every question on a scene; orbit views follow the sample key
            seed_key = self.key_for(record) if p.view_poses == "orbit" else ""
            rendered = _render(str(scene_dir), obj["scene_id"], p.view_poses, p.views, tuple(p.render_size), seed_key)
            views = tuple((*v, list(p.render_size)) for v in rendered)
            ops = f"render:{p.view_poses}"
        media = [
            Media("view", slot, data, "jpg", pose=pose, intrinsics=k, size=size, ops=[f"{ops}:{label}"])
            for slot, (label, pose, k, data, size) in enumerate(views)
        ]
        paths = [f"{p.image_prefix}/{obj['scene_id']}/view_{label}.jpg" for label, *_ in views]
        return Sample(
            key="",
            family="m4",
            conversations=[
                Turn("human", "<image>" * len(media) + "\n" + p.prompt.format(question=obj["question"])),
                Turn("gpt", str(obj["answers"][0])),
            ],
            record=m4_record(
                record.source_id,
                paths,
                dataset=p.dataset_name,
                question_type="open-ended",
                task_instruction=p.task_instruction,
            ),
            media=media,
        )


QUESTIONS = [
    ("What is in the corner of the room?", ["a box"], "box"),
    ("What color is the floor?", ["brown"], "floor"),
    ("How many boxes are on the floor?", ["four"], "box"),
]


def write_miniature(root: Path, *, scenes: int = 2, frames: int = 12, seed: int = 0) -> None:
    """A small ScanQA over ScanNet-layout scenes (mesh, poses, intrinsics, colour/depth frames)."""
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
            for q, (question, answers, obj_name) in enumerate(QUESTIONS):
                items.append({
                    "answers": answers, "object_ids": [q + 1], "object_names": [obj_name],
                    "question": question, "question_id": f"{split}-{scene_id[:-3]}-{q}", "scene_id": scene_id,
                })  # fmt: skip
        (root / "qa" / f"ScanQA_v1.0_{split}.json").write_text(json.dumps(items))
