"""3D-LLM scene language data on ScanNet scenes, with views from ``scannet_frames_25k``.

Layout (3D-LLM's Google Drive / HF ``ShuhongZheng/3D-LLM``)::

    data_part2_scene.json    a JSON list of {scene_id, question, answers: [...]}, chat and task rows
    scannet_frames_25k/<scene_id>/...   the views (see :mod:`.scannet25k`)

Rows read as 3D-LLM's own loader reads them (``scene_id``, ``question``, ``answers``) [V
``threedvqa_datasets.py``]. The file mixes ScanNet and HM3D scenes; M4-Instruct's "ScanNet" is
the ScanNet rows [I]: only rows whose scene matches ``scene_pattern`` are listed. How chat and
task rows are told apart is not known [U]: both become "ScanNet" samples. The answer is the
first of ``answers`` (the others are noted in ``ops``). The views, their number and their
choice are not published [U]: ``views`` frames spread uniformly over the scene's recorded
trajectory, recorded in the media ``ops``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BuildError
from ..sample import Sample
from ..templates import render
from . import fields as F
from .base import Adapter, RawRecord, SourceParams
from .scannet25k import (
    FRAMES_25K,
    SCANNET_COLOR_SIZE,
    Frames25kScene,
    frames25k_views,
    view_media,
    write_frames25k_scene,
)

log = logging.getLogger(__name__)


@dataclass
class Params(SourceParams):
    annotation: str = "data_part2_scene.json"
    frames_dir: str = FRAMES_25K
    scene_pattern: str = r"^scene\d{4}_\d{2}$"  # ScanNet scene ids; HM3D rows are filtered out [I]
    views: int = 4  # [U]
    intrinsics_size: list[int] = field(default_factory=lambda: list(SCANNET_COLOR_SIZE))  # [I]
    prompt: str = "@m4/scene_question"
    dataset_name: str = "ScanNet"
    task_instruction: str = ""

    def __post_init__(self):
        try:
            re.compile(self.scene_pattern)
        except re.error as err:
            raise BuildError(f"threedllm: scene_pattern is not a regular expression: {err}") from None
        if self.views < 1 or len(self.intrinsics_size) != 2:
            raise BuildError("threedllm: views must be at least 1 and intrinsics_size [width, height]")


class ThreeDLLM(Adapter):
    name = "threedllm"
    family = "m4"
    Params = Params
    description = "3D-LLM scene chat/task data on ScanNet scenes, views from scannet_frames_25k"
    reader = "json"

    def annotation_files(self) -> list[str]:
        return [self.params.annotation]

    def list_records(self) -> Iterator[RawRecord]:
        """The rows on ScanNet scenes (the others are counted in the log, not listed, so that the
        recipe's sampling draws from the ScanNet rows only)."""
        other = 0
        for record in super().list_records():
            scene = record.data.get("scene_id") if isinstance(record.data, dict) else None
            if isinstance(scene, str) and not re.match(self.params.scene_pattern, scene):
                other += 1
                continue
            yield record
        if other:
            log.info("%s: %d rows on scenes other than %s left out", self.source_name, other, self.params.scene_pattern)

    def to_sample(self, record: RawRecord) -> Sample:
        p, where = self.params, record.locator
        scene_id = F.ident(record.data, "scene_id", where)
        question = F.text(record.data, "question", where)
        answers = F.texts(record.data, "answers", where)
        scene = Frames25kScene(self.src, p.frames_dir, scene_id)
        views = self.cached(("views", scene_id), lambda: frames25k_views(self.src, scene, p.views, p.intrinsics_size))
        notes: dict[str, str] = {}
        human = render(self.template(notes, p.prompt, record, "human"),
                       {"question": question, "_images": "<image>" * len(views)}, where)  # fmt: skip
        ops = [f"answers:first_of_{len(answers)}"] if len(answers) > 1 else []
        return self.m4_sample(record, [("human", human), ("gpt", answers[0])], images=[v[-1] for v in views],
                              media=view_media(views), task_instruction=p.task_instruction, templates=notes,
                              ops=ops)  # fmt: skip

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        """Chat-like and task-like rows on two ScanNet scenes (one with a failed-tracking pose), an
        HM3D row (filtered), a row with several answers, one with none, one on a scene absent from
        the 25k frames, in the file's own key order."""
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        rows = [
            {"scene_id": "scene0000_00", "question": "Human: What could I do to relax in this room? Assistant:",
             "answers": ["You could sit on the sofa by the window and read."]},
            {"scene_id": "scene0000_00", "question": "Decompose the task: tidy up the room.",
             "answers": ["1. pick up the box. 2. put it on the shelf. 3. straighten the chair."]},
            {"scene_id": "00009-vLpv2VX547B_12", "question": "Where is the bed?", "answers": ["By the wall."]},
            {"scene_id": "scene0011_01", "question": "How many chairs are in the room?", "answers": ["two", "2"]},
            {"scene_id": "scene0011_01", "question": "What colour is the floor?", "answers": []},
            {"scene_id": "scene0999_00", "question": "What is on the table?", "answers": ["a lamp"]},
        ]  # fmt: skip
        (root / "data_part2_scene.json").write_text(json.dumps(rows))
        write_frames25k_scene(root, "scene0000_00", frames=9, seed=seed, bad_pose=4)
        write_frames25k_scene(root, "scene0011_01", frames=6, seed=seed + 50)
