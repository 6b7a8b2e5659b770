"""Raw video QA that needs code: CLEVRER (questions nested per video; several options may be
right). NExT-QA, IntentQA, STAR, AGQA, Something-Something v2 and Kinetics are declarations
(``recipes/sources/st_*.yaml``).

**CLEVRER** (clevrer.csail.mit.edu; question schema [I], verified against VideoChat2's
``clevrer_qa`` / ``clevrer_mc`` derivatives only)::

    questions/train.json     [{scene_index, video_filename, questions: [{question_id, question,
                               question_type, answer?, program, choices?: [{choice_id, choice,
                               answer: "correct" | "wrong", program}]}]}]
    video_train/video_00000-01000/video_00000.mp4   (1000 videos per folder)

Descriptive questions have an ``answer``; the others have ``choices``, any number of them
correct: the answer lists every correct option.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ...sample import Sample
from ...templates import LETTERS
from .. import fields as F
from ..base import RawRecord, SourceError
from .common import STVideoAdapter, STVideoParams, caption_text, write_clip


@dataclass
class CLEVRERParams(STVideoParams):
    annotation: str = "questions/train.json"
    video_root: str = "video_train"
    open_prompt: str = "@st_video/vqa_open_prompt_short"
    multi_prompt: str = "@st_video/vqa_multi_prompt"
    multi_answer: str = "@st_video/vqa_multi_answer"


def clevrer_folder(scene: int) -> str:
    lo = scene // 1000 * 1000
    return f"video_{lo:05d}-{lo + 1000:05d}"


class CLEVRER(STVideoAdapter):
    name = "st_clevrer"
    Params = CLEVRERParams
    description = "CLEVRER questions (descriptive open answers; multi-answer choices) as video QA"

    def list_records(self):
        rel = self.params.annotation
        for i, item in enumerate(self.items(rel)):
            if item.error or not isinstance(item.data, dict) or not isinstance(item.data.get("questions"), list):
                yield self.broken(item, f"index{i}", f"{rel} {item.locator}: expected {{scene_index, questions}}")
                continue
            scene = item.data.get("scene_index", i)
            for j, q in enumerate(item.data["questions"]):
                qid = q.get("question_id", j) if isinstance(q, dict) else j
                yield RawRecord(rel, f"{item.locator} question {j}", f"{scene}-{qid}", {"video": item.data, "q": q})

    def to_sample(self, record: RawRecord) -> Sample:
        p, where = self.params, record.locator
        item, q = record.data["video"], record.data["q"]
        scene = F.integer(item, "scene_index", where, lo=0)
        video = f"{p.video_root}/{clevrer_folder(scene)}/{F.text(item, 'video_filename', where)}"
        question = caption_text(F.need(q, "question", where), f"{where}: question")
        notes: dict = {}
        if "choices" in q:
            choices = F.listing(q, "choices", where)
            if len(choices) > len(LETTERS):
                raise SourceError(f"{where}: {len(choices)} choices")
            texts = [caption_text(F.need(c, "choice", where), f"{where}: choice {k}") for k, c in enumerate(choices)]
            marks = [F.text(c, "answer", where) for c in choices]
            if set(marks) - {"correct", "wrong"}:
                raise SourceError(f"{where}: choice answers must be correct or wrong, got {sorted(set(marks))}")
            right = [f"{LETTERS[k]}. {t}" for k, (t, m) in enumerate(zip(texts, marks)) if m == "correct"]
            if not right:
                raise SourceError(f"{where}: no choice is marked correct")
            values = {
                "question": question,
                "_options": "\n".join(f"{LETTERS[k]}. {t}" for k, t in enumerate(texts)),
                "_answers": "\n".join(right),
            }
            turns = [("human", self.template(notes, p.multi_prompt, record, "human"), values),
                     ("gpt", self.template(notes, p.multi_answer, record, "gpt"), values)]  # fmt: skip
        else:
            values = {"question": question, "answer": caption_text(F.need(q, "answer", where), f"{where}: answer")}
            turns = [("human", self.template(notes, p.open_prompt, record, "human"), values),
                     ("gpt", "{answer}", values)]  # fmt: skip
        return self.video_sample(record, turns, video=video, clock=self.clock(video), notes=notes)

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        root = Path(root)
        p = cls.Params()
        for scene in (0, 1001):
            write_clip(
                root, f"{p.video_root}/{clevrer_folder(scene)}/video_{scene:05d}.mp4", fps=5, frames=64, seed=seed
            )  # fmt: skip (CLEVRER videos: 128 frames; halved here)
        items = [
            {"scene_index": 0, "video_filename": "video_00000.mp4", "questions": [
                {"question_id": 0, "question_type": "descriptive", "question": "What is the shape of the object "
                 "that enters the scene?", "answer": "cube", "program": ["filter_shape"]},
                {"question_id": 1, "question_type": "explanatory", "question": "Which of the following is "
                 "responsible for the collision?", "program": ["events"],
                 "choices": [{"choice_id": 0, "choice": "The presence of the cube", "answer": "correct", "program": []},
                             {"choice_id": 1, "choice": "The sphere's entering", "answer": "wrong", "program": []},
                             {"choice_id": 2, "choice": "The cylinder's moving", "answer": "correct",
                              "program": []}]}]},
            {"scene_index": 1001, "video_filename": "video_01001.mp4", "questions": [
                {"question_id": 0, "question_type": "descriptive", "question": "How many objects are moving?",
                 "answer": "2", "program": []},
                {"question_id": 1, "question_type": "predictive", "question": "What will happen next?",
                 "program": [], "choices": [{"choice_id": 0, "choice": "The cube collides with the wall",
                                             "answer": "wrong", "program": []}]}]},  # nothing correct
        ]  # fmt: skip
        path = root / p.annotation
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(items, indent=1))
