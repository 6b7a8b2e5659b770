"""NExT-QA (video): the multi-choice CSVs over VidOR videos, as published by doc-doc/NExT-QA.

Layout::

    dataset/nextqa/train.csv  val.csv  test.csv     video,frame_count,width,height,question,
                                                    answer,qid,type,a0,a1,a2,a3,a4
    dataset/nextqa/map_vid_vidorID.json             {"2909445186": "0101/2909445186", ...}
    NExTVideo/<folder>/<video>.mp4

``answer`` is the index (0-4) of the right option. M4-Instruct uses NExT-QA as "frames as
images": each sample carries N uniformly sampled frames, one ``<image>`` each.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ..formats import m4_record
from ..media.video import FpsSampler, UniformSampler, frame_media, iter_frames, probe
from ..sample import Media, Sample, Turn
from ..synthetic import write_video
from .base import Adapter, RawRecord, SourceError

COLUMNS = [
    "video",
    "frame_count",
    "width",
    "height",
    "question",
    "answer",
    "qid",
    "type",
    "a0",
    "a1",
    "a2",
    "a3",
    "a4",
]
LETTERS = "ABCDE"


@dataclass
class Params:
    splits: list[str] = field(default_factory=lambda: ["train"])
    frames: int = 8  # frames per sample: not published for M4-Instruct (8-10 is typical)
    frame_strategy: str = "uniform"  # uniform: `frames` by linspace | fps: every avg_fps/video_fps-th, capped
    video_fps: float = 1.0  # fps strategy only
    annotation_dir: str = "dataset/nextqa"
    video_dir: str = "NExTVideo"
    image_prefix: str = "nextqa"
    dataset_name: str = "NExT-QA"
    prompt: str = "{question}?\n{options}\nAnswer with the option's letter from the given choices directly."
    answer: str = "{letter}"
    task_instruction: str = ""


def make_sampler(strategy: str, frames: int, video_fps: float):
    if strategy == "uniform":
        return UniformSampler(frames)
    if strategy == "fps":
        return FpsSampler(video_fps=video_fps, frames_upbound=frames)
    raise SourceError("invalid_annotation", f"frame_strategy {strategy!r} is not one of uniform, fps")


@lru_cache(maxsize=8)
def _video_frames(path: str, strategy: str, num: int, video_fps: float) -> tuple[Media, ...]:
    """Encoded frames of one video, one slot each (several questions share a video)."""
    info = probe(Path(path))
    return tuple(frame_media(iter_frames(Path(path), make_sampler(strategy, num, video_fps).indices(info), info),
                             one_slot=False))  # fmt: skip


class NExTQA(Adapter):
    name = "nextqa"
    family = "m4"
    Params = Params
    description = "NExT-QA multi-choice video QA, frames as images (doc-doc/NExT-QA layout)"

    def list_records(self):
        p = self.params
        for split in p.splits:
            rel = f"{p.annotation_dir}/{split}.csv"
            with open(self.annotation_path(rel), newline="", encoding="utf-8") as fh:
                reader = csv.reader(fh)
                header = next(reader, [])
                if header[: len(COLUMNS)] != COLUMNS:
                    raise ValueError(f"nextqa: {rel} header {header} is not {COLUMNS}")
                for rowno, row in enumerate(reader, start=2):
                    locator = f"row {rowno}"
                    if len(row) != len(header):
                        yield RawRecord(
                            rel,
                            locator,
                            f"{split}-row{rowno}",
                            None,
                            f"{rel} row {rowno}: {len(row)} columns, expected {len(header)}",
                        )
                        continue
                    obj = dict(zip(header, row))
                    yield RawRecord(rel, locator, f"{split}-{obj['video']}-{obj['qid']}", obj)

    def _video_map(self) -> dict[str, str]:
        if not hasattr(self, "_map"):
            path = self.root / self.params.annotation_dir / "map_vid_vidorID.json"
            self._map = json.loads(path.read_text()) if path.is_file() else {}
        return self._map

    def to_sample(self, record: RawRecord) -> Sample:
        p = self.params
        row = record.data
        try:
            answer = int(row["answer"])
            options = [row[f"a{i}"] for i in range(5)]
        except (KeyError, ValueError) as err:
            raise SourceError("invalid_annotation", f"{record.locator}: bad answer/options: {err}") from err
        if not 0 <= answer < len(options):
            raise SourceError("invalid_annotation", f"{record.locator}: answer index {answer} out of range")
        vid = row["video"]
        rel = self._video_map().get(vid)
        if rel is None:
            raise SourceError("missing_media", f"{record.locator}: video {vid} not in map_vid_vidorID.json")
        path = self.require_file(f"{p.video_dir}/{rel}.mp4", "video")
        media = list(_video_frames(str(path), p.frame_strategy, p.frames, p.video_fps))
        paths = [f"{p.image_prefix}/{vid}/frame_{m.frame_index:06d}.jpg" for m in media]
        option_text = "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(options))
        question = p.prompt.format(question=row["question"], options=option_text)
        return Sample(
            key="",
            family="m4",
            conversations=[
                Turn("human", "<image>" * len(media) + "\n" + question),
                Turn("gpt", p.answer.format(letter=LETTERS[answer], option=options[answer])),
            ],
            record=m4_record(
                record.source_id,
                paths,
                dataset=p.dataset_name,
                question_type="multi-choice",
                task_instruction=p.task_instruction,
                choice_list=options,
            ),
            media=media,
        )


QUESTIONS = [
    ("what does the box do", ["moves right", "stays still", "jumps", "spins", "disappears"], 0, "CW"),
    ("how many boxes are there", ["two", "one", "three", "four", "none"], 1, "DC"),
    ("where is the box at the end", ["left", "centre", "right", "top", "bottom"], 2, "DL"),
]


def write_miniature(root: Path, *, videos: int = 3, seed: int = 0) -> None:
    """A small NExT-QA: train/val CSVs, the video map and short H.264 videos."""
    root = Path(root)
    ann = root / "dataset" / "nextqa"
    ann.mkdir(parents=True, exist_ok=True)
    vid_map = {}
    for split, offset in (("train", 0), ("val", 50)):
        rows = []
        for v in range(videos):
            vid = str(4010069381 + offset + v)
            rel = f"{v % 2:04d}/{vid}"
            vid_map[vid] = rel
            num_frames = 45 + 15 * v
            write_video(root / "NExTVideo" / f"{rel}.mp4", seed=seed + offset + v, num_frames=num_frames)
            for qid, (question, options, answer, qtype) in enumerate(QUESTIONS[: 2 + v % 2]):
                rows.append([vid, num_frames, 160, 96, question, answer, qid, qtype, *options])
        with open(ann / f"{split}.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(COLUMNS)
            writer.writerows(rows)
    (ann / "map_vid_vidorID.json").write_text(json.dumps(vid_map))
