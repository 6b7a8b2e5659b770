"""VidSTG spatial-temporal video grounding (STVG) as ST-Align samples, over VidOR videos.

Layout (github.com/Guaranteer/VidSTG-Dataset over the VidOR release)::

    annotations/train_annotations.json  val_annotations.json  test_annotations.json
        [{vid, fps, frame_count, width, height, subject/objects: [{tid, category}],
          used_segment: {begin_fid, end_fid}, used_relation: {...}, temporal_gt: {begin_fid,
          end_fid}, captions: [{description, type, target_id}], questions: [...]}, ...]
    annotations/<split>_files.json                    [vid, ...]
    vidor/annotation/training/<folder>/<vid>.json     VidOR: video_path, trajectories (one list
    vidor/annotation/validation/<folder>/<vid>.json   per frame of {tid, bbox: {xmin, ymin, xmax, ymax}})
    vidor/video/<folder>/<vid>.mp4

VidSTG train and val come from VidOR's training part, test from its validation part.
``temporal_gt.end_fid`` is exclusive (VidOR's convention); ``used_segment`` becomes ``meta.split``.
Each caption and each question is one sample: 100 frames over the split, the answer's span and
the target's box tube written with LAPE placeholders, values in ``variables``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ..media.video import STRangeSampler, frame_media, iter_frames, probe
from ..sample import Media, Sample, Turn
from ..synthetic import write_video
from .base import Adapter, RawRecord, SourceError, require_fields

ST_FRAMES = 100
SPAN = "{<TEMP-OUTPUT><TEMP-OUTPUT>}"
BOX = "[<WIDTH-OUTPUT><HEIGHT-OUTPUT><WIDTH-OUTPUT><HEIGHT-OUTPUT>]"
_SUFFIX = (
    " Please firstly give the timestamps, and then give the spatial bounding box corresponding to each"
    " timestamp in the time period."
)


@dataclass
class Params:
    split: str = "train"  # the VidSTG split: train | val | test
    annotation_dir: str = "annotations"
    vidor_dir: str = "vidor"
    video_prefix: str = "vidor/video"  # the record's video path = prefix/<VidOR video_path>
    sentences: list[str] = field(default_factory=lambda: ["captions", "questions"])
    caption_prompt: str = (
        "<video>\nAt which time interval in the video can we see {description} occurring? "
        "Please describe the location of the corresponding subject/object in this video." + _SUFFIX
    )
    question_prompt: str = "<video>\n{description}" + _SUFFIX
    answer: str = "{phrase} {span}. Object bounding box: {tube}"
    span_phrases: list[str] = field(default_factory=lambda: [
        "During the span of", "In the time range", "During the period", "Within the time frame of",
        "In the time period", "During", "Between", "At",
    ])  # fmt: skip
    max_tube_boxes: int = 0  # 0: one box per sampled frame inside the span


def _norm(value: float, lo: int, hi: int) -> float:
    return round(min(1.0, max(0.0, (value - lo) / (hi - lo))), 3)


@lru_cache(maxsize=4)
def _st_frames(path: str, start: int, end: int) -> tuple[Media, ...]:
    """ST's 100 frames of one segment, in one slot (captions and questions share a segment)."""
    info = probe(Path(path))
    frames = iter_frames(Path(path), STRangeSampler(start, end, ST_FRAMES).indices(info), info)
    return tuple(frame_media(frames, one_slot=True))


class VidSTG(Adapter):
    name = "vidstg"
    family = "st"
    Params = Params
    description = "VidSTG spatial-temporal video grounding as ST-Align STVG (100 frames, LAPE tokens)"

    def list_records(self):
        p = self.params
        rel = f"{p.annotation_dir}/{p.split}_annotations.json"
        for i, entry in enumerate(self.read_json_list(rel)):
            if not isinstance(entry, dict):
                yield RawRecord(rel, f"index {i}", f"{p.split}-{i}", None, f"{rel} index {i}: not an object")
                continue
            seg = entry.get("used_segment") or {}
            base = f"{entry.get('vid')}-{seg.get('begin_fid')}-{seg.get('end_fid')}"
            for kind in p.sentences:
                for j, sentence in enumerate(entry.get(kind) or []):
                    data = {"entry": entry, "kind": kind, "sentence": sentence}
                    yield RawRecord(rel, f"index {i} {kind}[{j}]", f"{base}-{kind[0]}{j}", data)

    @property
    def _vidor_split(self) -> str:
        return "validation" if self.params.split == "test" else "training"

    def _vidor_annotation(self, vid: str) -> dict:
        if not hasattr(self, "_vidor_index"):
            ann_root = self.root / self.params.vidor_dir / "annotation" / self._vidor_split
            self._vidor_index = {p.stem: p for p in ann_root.glob("*/*.json")}
            self._vidor_cache: dict[str, dict] = {}
        if vid not in self._vidor_cache:
            path = self._vidor_index.get(vid)
            if path is None:
                raise SourceError("missing_media", f"no VidOR annotation for video {vid}")
            self._vidor_cache = {vid: json.loads(path.read_text())}  # entries of one video are adjacent
        return self._vidor_cache[vid]

    def to_sample(self, record: RawRecord) -> Sample:
        p = self.params
        entry, kind, sentence = record.data["entry"], record.data["kind"], record.data["sentence"]
        where = record.locator
        require_fields(entry, ("vid", "frame_count", "width", "height", "used_segment", "temporal_gt"), where)
        require_fields(sentence, ("description", "target_id"), where)
        vidor = self._vidor_annotation(str(entry["vid"]))
        require_fields(vidor, ("video_path", "trajectories", "width", "height"), f"VidOR {entry['vid']}")
        width, height = vidor["width"], vidor["height"]
        if not (width > 0 and height > 0):
            raise SourceError("invalid_annotation", f"{where}: bad frame size {width}x{height}")
        last = int(entry["frame_count"]) - 1
        seg_s = max(0, int(entry["used_segment"]["begin_fid"]))
        seg_e = min(last, int(entry["used_segment"]["end_fid"]))
        gt_s = max(seg_s, int(entry["temporal_gt"]["begin_fid"]))
        gt_e = min(seg_e, int(entry["temporal_gt"]["end_fid"]) - 1)  # exclusive end -> last frame
        if seg_e <= seg_s or gt_e < gt_s:
            raise SourceError(
                "invalid_annotation", f"{where}: empty segment [{seg_s}, {seg_e}] or span [{gt_s}, {gt_e}]"
            )
        video_rel = f"{p.vidor_dir}/video/{vidor['video_path']}"
        frames = _st_frames(str(self.require_file(video_rel, "video")), seg_s, seg_e)

        tid = sentence["target_id"]
        trajectories = vidor["trajectories"]
        tube = []  # (time, x1, y1, x2, y2)
        for idx in (m.frame_index for m in frames):
            if gt_s <= idx <= gt_e and idx < len(trajectories):
                box = next((b["bbox"] for b in trajectories[idx] if b.get("tid") == tid), None)
                if box is not None:
                    tube.append(
                        (
                            _norm(idx, seg_s, seg_e),
                            box["xmin"] / width,
                            box["ymin"] / height,
                            box["xmax"] / width,
                            box["ymax"] / height,
                        )
                    )
        tube = list(dict.fromkeys(tube))  # repeated sampled frames (short segments) give one box
        if not tube:
            raise SourceError("invalid_annotation", f"{where}: target {tid} has no box inside the span")
        if p.max_tube_boxes and len(tube) > p.max_tube_boxes:
            step = (len(tube) - 1) / (p.max_tube_boxes - 1) if p.max_tube_boxes > 1 else 0
            tube = [tube[round(i * step)] for i in range(p.max_tube_boxes)]

        temporal = [_norm(gt_s, seg_s, seg_e), _norm(gt_e, seg_s, seg_e)]
        widths, heights = [], []
        for t, x1, y1, x2, y2 in tube:
            temporal.append(t)
            widths += [round(min(1.0, max(0.0, x1)), 3), round(min(1.0, max(0.0, x2)), 3)]
            heights += [round(min(1.0, max(0.0, y1)), 3), round(min(1.0, max(0.0, y2)), 3)]
        digest = int(hashlib.sha1(record.source_id.encode()).hexdigest(), 16)
        phrase = p.span_phrases[digest % len(p.span_phrases)]
        description = str(sentence["description"]).strip().rstrip(".?")
        prompt = p.caption_prompt if kind == "captions" else p.question_prompt
        if kind != "captions":
            description += "?"
        answer = p.answer.format(phrase=phrase, span=SPAN, tube=", ".join(f"<TEMP-OUTPUT>:{BOX}" for _ in tube))
        media = list(frames)
        return Sample(
            key="",
            family="st",
            conversations=[Turn("human", prompt.format(description=description)), Turn("gpt", answer)],
            record={
                "id": record.source_id,
                "video": f"{p.video_prefix}/{vidor['video_path']}",
                "meta": {"split": [seg_s, seg_e]},
                "variables": {
                    "temporal_input_locations": [],
                    "temporal_output_locations": temporal,
                    "spatial_height_input_locations": [],
                    "spatial_height_output_locations": heights,
                    "spatial_width_input_locations": [],
                    "spatial_width_output_locations": widths,
                },
            },
            media=media,
        )


def _box_at(i: int, n: int, w: int, h: int) -> dict:
    """The moving box that synthetic.write_video draws, in pixels."""
    x = int((i / max(1, n - 1)) * (w - 24))
    return {"xmin": x, "ymin": h // 3, "xmax": x + 24, "ymax": h // 3 + 24}


def write_miniature(root: Path, *, videos: int = 2, seed: int = 0) -> None:
    """A small VidSTG (train and test) with VidOR annotations and H.264 videos."""
    root = Path(root)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    w, h, fps = 160, 96, 30
    for split, vidor_split, offset in (("train", "training", 0), ("test", "validation", 100)):
        entries, files = [], []
        for v in range(videos):
            vid = str(2401075277 + offset + v)
            folder = f"{v:04d}"
            n = 150 if v % 2 == 0 else 80  # the short one has fewer frames than ST's 100
            write_video(
                root / "vidor" / "video" / folder / f"{vid}.mp4",
                seed=seed + offset + v,
                num_frames=n,
                fps=fps,
            )
            objects = [{"tid": 0, "category": "toy"}, {"tid": 1, "category": "adult"}]
            vidor = {
                "version": "VERSION 1.0", "video_id": vid, "video_hash": hashlib.md5(vid.encode()).hexdigest(),
                "video_path": f"{folder}/{vid}.mp4", "frame_count": n, "fps": fps, "width": w, "height": h,
                "subject/objects": objects,
                "trajectories": [[{"tid": 0, "bbox": _box_at(i, n, w, h), "generated": 0, "tracker": "none"}]
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
                "used_segment": {"begin_fid": 5, "end_fid": n - 1}, "width": w, "height": h,
                "subject/objects": objects,
                "used_relation": {"subject_tid": 1, "object_tid": 0, "predicate": "watch",
                                  "begin_fid": n // 4, "end_fid": n // 2},
                "temporal_gt": {"begin_fid": n // 4, "end_fid": n // 2},
                "captions": [{"description": "the toy box moves to the right.", "type": "object", "target_id": 0}],
                "questions": [{"description": "what moves to the right?", "type": "object", "target_id": 0}][: v + 1],
            })  # fmt: skip
        (root / "annotations" / f"{split}_annotations.json").write_text(json.dumps(entries))
        (root / "annotations" / f"{split}_files.json").write_text(json.dumps(files))
