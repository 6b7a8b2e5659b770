"""VidSTG as ST-Align's spatio-temporal tasks (STVG, SVG, ELC), over VidOR videos.

Layout (github.com/Guaranteer/VidSTG-Dataset over the VidOR release)::

    annotations/train_annotations.json  val_annotations.json  test_annotations.json
        [{vid, fps, frame_count, width, height, subject/objects: [{tid, category}],
          used_segment: {begin_fid, end_fid}, used_relation: {...}, temporal_gt: {begin_fid,
          end_fid}, captions: [{description, type, target_id}], questions: [...]}, ...]
    annotations/<split>_files.json                    [vid, ...]
    vidor/annotation/training/<folder>/<vid>.json     VidOR: video_path, trajectories (one list
    vidor/annotation/validation/<folder>/<vid>.json   per frame of {tid, bbox: {xmin, ymin, xmax, ymax}})
    vidor/video/<folder>/<vid>.mp4

In the published files many entries share one ``vid`` and one ``used_segment`` (other relations,
captions and targets), and the entries of one video are not adjacent. A sentence is therefore
keyed by its entry's position in its file plus its caption / question index; true repeats are
left to exact dedup. VidSTG train and val come from VidOR's training part, test from its
validation part.

Frame conventions (VidOR's, as :func:`m4_pipeline.coords.frame_range` names them): both
``used_segment.end_fid`` and ``temporal_gt.end_fid`` are **exclusive** — the last frame is
``end_fid - 1`` and an ``end_fid`` equal to ``frame_count`` is valid. ``used_segment`` becomes
``meta.split``; the ground truth must lie inside it. Each sentence is one sample: 100 frames over
the split, the answer's span and the target's box tube (boxes at the sampled frames inside the
span) written with LAPE placeholders, values in ``variables``.

Tasks (``task``), after LLaVA-ST's demo queries and ``VidSTGChatDataset`` (inference/src/datasets.py):

- ``stvg``: the sentence -> the span and the tube (every caption and question: ST-Align's
  81K STVG = VidSTG's 80,684 training sentences);
- ``svg``: the sentence and the span (as input) -> the tube (the same sentences: SVG 81K);
- ``elc``: the start time and the target's box at the start frame -> "Ends in <e>, <caption>.
  Object bounding box: <tube>" (declarative captions only: ELC 36K = 36,202 declarative
  training sentences).

The templates of SVG and ELC are ``@st_image/svg_*`` and ``@st_image/elc_*``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..coords import Box, Ops, Span, Time, Tube, frame_range, norm_box
from ..errors import BuildError
from ..media.sampling import STRangeSampler
from ..readers import load_json
from ..sample import Sample
from ..synthetic import write_video
from . import fields as F
from .base import Adapter, RawRecord, SourceError, SourceParams

ST_FRAMES = 100
TASKS = ("stvg", "svg", "elc")
TASK_SENTENCES = {"stvg": ["captions", "questions"], "svg": ["captions", "questions"], "elc": ["captions"]}


@dataclass
class Params(SourceParams):
    split: str = "train"  # the VidSTG split: train | val | test
    task: str = "stvg"  # stvg | svg | elc
    annotation_dir: str = "annotations"
    vidor_dir: str = "vidor"
    video_prefix: str = "vidor/video"  # the record's video path = prefix/<VidOR video_path>
    sentences: list[str] = field(
        default_factory=list
    )  # [] = the task's: captions+questions (stvg, svg), captions (elc)
    caption_prompt: str = "@st/stvg_caption_prompt"
    question_prompt: str = "@st/stvg_question_prompt"
    answer: str = "@st/stvg_answer"
    span_phrases: str = "@st/tvg_span_phrases"
    svg_caption_prompt: str = "@st_image/svg_caption_prompt"
    svg_question_prompt: str = "@st_image/svg_question_prompt"
    svg_answer: str = "@st_image/svg_answer"
    elc_prompt: str = "@st_image/elc_prompt"
    elc_answer: str = "@st_image/elc_answer"
    max_tube_boxes: int = 0  # 0: one box per sampled frame inside the span


class VidSTG(Adapter):
    name = "vidstg"
    family = "st"
    Params = Params
    description = "VidSTG as ST-Align STVG, SVG and ELC (100 frames, LAPE tokens)"
    reader = "json"

    def preflight(self) -> None:
        p = self.params
        if p.task not in TASKS:
            raise BuildError(f"{self.name}: task {p.task!r} is not one of {', '.join(TASKS)}")
        unknown = [k for k in p.sentences if k not in ("captions", "questions")]
        if unknown:
            raise BuildError(f"{self.name}: sentences {unknown} are not 'captions' or 'questions'")
        if p.task == "elc" and "questions" in p.sentences:
            raise BuildError(f"{self.name}: ELC answers with the event's caption; it takes declarative captions only")

    def _sentence_kinds(self) -> list[str]:
        return list(self.params.sentences) or TASK_SENTENCES.get(self.params.task, TASK_SENTENCES["stvg"])

    def annotation_files(self) -> list[str]:
        return [f"{self.params.annotation_dir}/{self.params.split}_annotations.json"]

    def records_from(self, item) -> list[RawRecord]:
        """One record per caption and question of an entry, keyed by the entry's position."""
        i, rel = item.locator.split()[-1], item.file
        entry = item.data
        if item.error is not None or not isinstance(entry, dict):
            error = item.error or f"{rel} {item.locator}: not an object"
            return [RawRecord(rel, item.locator, f"{self.params.split}-{i}", None, error)]
        out = []
        for kind in self._sentence_kinds():
            sentences = entry.get(kind) or []
            for j, sentence in enumerate(sentences if isinstance(sentences, list) else [sentences]):
                data = {"entry": entry, "kind": kind, "sentence": sentence}
                out.append(RawRecord(rel, f"{item.locator} {kind}[{j}]", f"{self.params.split}-{i}-{kind[0]}{j}", data))
        return out

    def _vidor_index(self) -> dict[str, str]:
        split = "validation" if self.params.split == "test" else "training"
        pattern = f"{self.params.vidor_dir}/annotation/{split}/*/*.json"
        return self.cached(("vidor-index",), lambda: {Path(r).stem: r for r in self.src.glob(pattern)})

    def _vidor(self, vid: str) -> dict:
        rel = self._vidor_index().get(vid)
        if rel is None:
            raise SourceError(f"no VidOR annotation for video {vid}", reason="missing_media")
        return self.cached(("vidor", vid), lambda: load_json(self.src, rel))

    def to_sample(self, record: RawRecord) -> Sample:
        p = self.params
        entry, kind, sentence = record.data["entry"], record.data["kind"], record.data["sentence"]
        where = record.locator
        vid = F.ident(entry, "vid", where)
        frame_count = F.integer(entry, "frame_count", where, lo=2)
        description = F.text(sentence, "description", where).strip().rstrip(".?")
        target = F.need(sentence, "target_id", where)
        segment = F.mapping(entry, "used_segment", where)
        gt = F.mapping(entry, "temporal_gt", where)
        clip = frame_range(F.need(segment, "begin_fid", where), F.need(segment, "end_fid", where),
                           end_inclusive=False, num_frames=frame_count, what=f"{where}: used_segment")  # fmt: skip
        span = frame_range(F.need(gt, "begin_fid", where), F.need(gt, "end_fid", where), end_inclusive=False,
                           num_frames=frame_count, what=f"{where}: temporal_gt")  # fmt: skip
        if span.start < clip.start or span.end > clip.end:
            raise SourceError(f"{where}: temporal_gt {span.as_list()} lies outside used_segment {clip.as_list()}")
        vidor = self._vidor(vid)
        width, height = F.number(vidor, "width", f"VidOR {vid}", lo=1), F.number(vidor, "height", f"VidOR {vid}", lo=1)
        trajectories = F.listing(vidor, "trajectories", f"VidOR {vid}")
        video_rel = f"{p.vidor_dir}/video/{F.text(vidor, 'video_path', f'VidOR {vid}')}"
        info = self.video_info(video_rel)
        if info.num_frames < clip.end + 1:
            raise SourceError(
                f"{where}: used_segment {clip.as_list()} past the decoded video's {info.num_frames} frames"
            )
        indices = STRangeSampler(clip.start, clip.end, ST_FRAMES).indices(info)
        media = self.frames(video_rel, indices, one_slot=True)

        ops = Ops()
        tube: list[tuple[float, Box]] = []
        for idx in dict.fromkeys(indices):  # repeated sampled frames (short segments) give one box
            if span.start <= idx <= span.end:
                box = _target_box(trajectories, idx, target)
                if box is not None:
                    xyxy = norm_box(box, width=width, height=height, fmt="xyxy", what=f"{where}: box at frame {idx}",
                                    ops=ops)  # fmt: skip
                    tube.append((clip.time(idx), Box(*xyxy)))
        if not tube:
            raise SourceError(f"{where}: target {target} has no box inside the span")
        if p.max_tube_boxes and len(tube) > p.max_tube_boxes:
            step = (len(tube) - 1) / (p.max_tube_boxes - 1) if p.max_tube_boxes > 1 else 0
            tube = [tube[round(i * step)] for i in range(p.max_tube_boxes)]

        notes: dict[str, str] = {}
        text = description if kind == "captions" else description + "?"
        values = {
            "description": text,
            "_span": Span(clip.time(span.start), clip.time(span.end)),
            "tube": Tube(tuple(tube)),
        }
        if p.task == "elc":
            start_box = _target_box(trajectories, span.start, target)
            if start_box is None:
                raise SourceError(f"{where}: target {target} has no box at the span's first frame {span.start}")
            values.update(start=Time(clip.time(span.start)), end=Time(clip.time(span.end)),
                          start_box=Box(*norm_box(start_box, width=width, height=height, fmt="xyxy",
                                                  what=f"{where}: box at frame {span.start}", ops=ops)))  # fmt: skip
            prompt, answer = p.elc_prompt, p.elc_answer
        elif p.task == "svg":
            prompt = p.svg_caption_prompt if kind == "captions" else p.svg_question_prompt
            answer = p.svg_answer
        else:
            prompt = p.caption_prompt if kind == "captions" else p.question_prompt
            answer = p.answer
        values["phrase"] = self.template(notes, p.span_phrases, record, "phrase")
        prompt = self.template(notes, prompt, record, "human")
        answer = self.template(notes, answer, record, "gpt")
        return self.st_sample(record, [("human", prompt, values), ("gpt", answer, values)],
                              video=f"{p.video_prefix}/{vidor['video_path']}", split=clip, media=media,
                              templates=notes, ops=ops.items)  # fmt: skip

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        _write_vidstg_miniature(root, seed=seed)


def _target_box(trajectories: list, frame: int, target) -> dict | None:
    """The target's VidOR box at ``frame`` (None when it is not annotated there)."""
    boxes = trajectories[frame] if frame < len(trajectories) and isinstance(trajectories[frame], list) else []
    return next((b.get("bbox") for b in boxes if isinstance(b, dict) and b.get("tid") == target), None)


def _box_at(i: int, n: int, w: int, h: int) -> dict:
    """The moving box that synthetic.write_video draws, in pixels."""
    x = int((i / max(1, n - 1)) * (w - 24))
    return {"xmin": x, "ymin": h // 3, "xmax": x + 24, "ymax": h // 3 + 24}


def _write_vidstg_miniature(root: Path, *, videos: int = 2, seed: int = 0) -> None:
    """A small VidSTG (train and test) with VidOR annotations and H.264 videos, as the real files
    are: two entries share one video and one segment (another target), the entries of a video are
    not adjacent, and one ground truth ends at ``end_fid == frame_count``."""
    root = Path(root)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    w, h, fps = 160, 96, 30
    for split, vidor_split, offset in (("train", "training", 0), ("test", "validation", 100)):
        entries, files = [], []
        for v in range(videos):
            vid = str(2401075277 + offset + v)
            folder = f"{v:04d}"
            n = 150 if v % 2 == 0 else 80  # the short one has fewer frames than ST's 100
            write_video(root / "vidor" / "video" / folder / f"{vid}.mp4", seed=seed + offset + v, num_frames=n,
                        fps=fps)  # fmt: skip
            objects = [{"tid": 0, "category": "toy"}, {"tid": 1, "category": "adult"}]
            vidor = {
                "version": "VERSION 1.0", "video_id": vid, "video_hash": hashlib.md5(vid.encode()).hexdigest(),
                "video_path": f"{folder}/{vid}.mp4", "frame_count": n, "fps": fps, "width": w, "height": h,
                "subject/objects": objects,
                "trajectories": [[{"tid": 0, "bbox": _box_at(i, n, w, h), "generated": 0, "tracker": "none"},
                                  {"tid": 1, "bbox": {"xmin": 4, "ymin": 4, "xmax": 40, "ymax": 60},
                                   "generated": 1, "tracker": "none"}]
                                 for i in range(n)],
                "relation_instances": [{"subject_tid": 1, "object_tid": 0, "predicate": "watch",
                                        "begin_fid": n // 4, "end_fid": n // 2}],
            }  # fmt: skip
            ann = root / "vidor" / "annotation" / vidor_split / folder / f"{vid}.json"
            ann.parent.mkdir(parents=True, exist_ok=True)
            ann.write_text(json.dumps(vidor))
            files.append(vid)
            entries.append({
                "vid": vid, "fps": fps, "frame_count": n,
                "used_segment": {"begin_fid": 5, "end_fid": n}, "width": w, "height": h,
                "subject/objects": objects,
                "used_relation": {"subject_tid": 1, "object_tid": 0, "predicate": "watch",
                                  "begin_fid": n // 4, "end_fid": n // 2},
                "temporal_gt": {"begin_fid": n // 4, "end_fid": n // 2},
                "captions": [{"description": "the toy box moves to the right.", "type": "object", "target_id": 0}],
                "questions": [{"description": "what moves to the right?", "type": "object", "target_id": 0}][: v + 1],
            })  # fmt: skip
        # a second entry on the first video and the same segment: another relation and target,
        # a ground truth ending at the last frame (end_fid == frame_count); not adjacent to the first
        first = entries[0]
        entries.append({
            **first,
            "used_relation": {"subject_tid": 1, "object_tid": 0, "predicate": "hold",
                              "begin_fid": 100, "end_fid": first["frame_count"]},
            "temporal_gt": {"begin_fid": 100, "end_fid": first["frame_count"]},
            "captions": [{"description": "an adult holds the toy.", "type": "subject", "target_id": 1}],
            "questions": [{"description": "who holds the toy?", "type": "subject", "target_id": 1}],
        })  # fmt: skip
        (root / "annotations" / f"{split}_annotations.json").write_text(json.dumps(entries))
        (root / "annotations" / f"{split}_files.json").write_text(json.dumps(files))
