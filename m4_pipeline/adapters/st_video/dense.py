"""Dense captions: a video's events, each a span (or a start time) and a caption, as ST-Align DVC.

- **COIN** (coin-dataset/annotations README [V]): ``COIN.json`` = ``{"database": {<ytid>:
  {duration, class, video_url, start, end, subset: training|validation, recipe_type,
  annotation: [{id, segment: [s, e] seconds, label}]}}}``.
- **YouCook2** (``youcookii_annotations_trainval.json`` [V keys]): ``{"database": {<ytid>:
  {duration, subset, recipe_type, annotations: [{id, segment: [s, e], sentence}], video_url}}}``;
  raw videos under ``raw_videos/<subset>/<recipe_type>/<ytid>.<mp4|mkv|webm>`` (the extension
  varies: ``video_extensions`` are tried in order).
- **ActivityNet Captions** (``train.json`` [V key use in GVLd]): ``{v_<id>: {duration,
  timestamps: [[s, e], ...], sentences: [...]}}``.
- **Moment-10M GESM** (DCDmllm/Momentor ``convert_data_gesm.py`` [V]): ``GESM_data.json`` =
  ``{<ytid>: {timestamps: [[s, e], ...], captions: [...]}}`` seconds.
- **ViTT** (google-research-datasets/Video-Timeline-Tags-ViTT README [V]):
  ``ViTT-annotations.json``, one JSON object per line (not a JSON list) ``{id, annotations:
  [{timestamp: start in **milliseconds**, tag}]}``; ids of a split in ``<split>_id.txt``. Tags
  have a start only: they are written as points in time (``@st_video/dvc_point_event``), never
  given an invented end. Blank tags are dropped (recorded in ops).
- **VTG-IT dense captions** (gyxxyg/VTG-LLM ``process_dvc_data.py`` [V]): ``{video, QA: [{q,
  a: "21.0 - 22.0 seconds, caption.  23.0 - 24.0 seconds, ..."}]}``; point forms ("21.0
  seconds, caption.") and VTG-LLM's fixed-width digits are read too.

Times are seconds of the video as decoded (the whole video is ``meta.split``); an event outside
the video quarantines its record.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ...readers import AnnotationFileError, load_json
from ...sample import Sample
from ...templates import render
from .. import fields as F
from ..base import RawRecord, SourceError
from .common import caption_text, event_list, write_clip
from .moments import MomentAdapter, MomentParams, sentence, vtg_text


@dataclass
class DenseParams(MomentParams):
    annotation: str = ""
    under: str = ""  # the key of the object holding the videos ("database"), "" = the top level
    subsets: list[str] = field(default_factory=list)  # keep entries whose "subset" is one of these ([] = all)
    video: str = "videos/{_key}.mp4"  # path template over the entry's fields; _key = the video id
    video_extensions: list[str] = field(default_factory=list)  # tried in order when `video` has none
    dvc_point_prompt: str = "@st_video/dvc_point_prompt"
    dvc_point_event: str = "@st_video/dvc_point_event"


class DenseAdapter(MomentAdapter):
    """Dense captions of whole videos from an object keyed by video id."""

    Params = DenseParams

    def events(self, entry: dict, where: str) -> list[tuple]:
        """(start, end, caption) per event, in the source's order."""
        raise NotImplementedError

    def locate(self, rel: str, where: str) -> str:
        exts = self.params.video_extensions
        if not exts:
            return rel
        for ext in exts:
            if self.src.is_file(rel + ext):
                return rel + ext
        raise SourceError(f"{where}: no video {rel}{{{','.join(exts)}}}", reason="missing_media")

    def list_records(self):
        p = self.params
        data = load_json(self.src, p.annotation)
        for step in filter(None, p.under.split(".")):
            data = data.get(step) if isinstance(data, dict) else None
        if not isinstance(data, dict):
            raise AnnotationFileError(p.annotation, f"expected an object keyed by video under {p.under or 'the top'!r}")
        for key, entry in data.items():
            if p.subsets and isinstance(entry, dict) and entry.get("subset") not in p.subsets:
                continue
            yield RawRecord(p.annotation, f"key {key}", str(key), {"_key": key, "entry": entry})

    def to_sample(self, record: RawRecord) -> Sample:
        entry, where = record.data["entry"], record.locator
        if not isinstance(entry, dict):
            raise SourceError(f"{where}: expected an object, got {type(entry).__name__}")
        video = self.locate(render(self.params.video, {**entry, "_key": record.data["_key"]}, where), where)
        events = self.events(entry, where)
        if not events:
            raise SourceError(f"{where}: the video has no captioned event", reason="filtered")
        return self.dvc(record, video, self.clock(video), None, sorted(events))

    def dvc_points(self, record, video, clock, clip, events: list[tuple]):
        """``events``: (time, caption) in seconds, ordered; written as points in time."""
        p, notes, within = self.params, {}, clip or clock.whole
        points = [{"_time": clock.time(t, within, f"{record.locator}: event {i}"), "caption": sentence(c)}
                  for i, (t, c) in enumerate(events)]  # fmt: skip
        answer, values = event_list(self.template(notes, p.dvc_point_event, record, "event"), points,
                                    p.event_separator)  # fmt: skip
        turns = [("human", self.template(notes, p.dvc_point_prompt, record, "human"), {}), ("gpt", answer, values)]
        return self.video_sample(record, turns, video=video, clock=clock, clip=clip, notes=notes)


def _segments(items: list, caption_key: str, where: str) -> list[tuple]:
    out = []
    for k, a in enumerate(items):
        seg = F.listing(a, "segment", f"{where}: event {k}")
        if len(seg) != 2:
            raise SourceError(f"{where}: event {k}: segment must be [start, end] seconds")
        s, e = (F.check_number(x, f"{where}: event {k} segment") for x in seg)
        out.append((s, e, caption_text(F.need(a, caption_key, where), f"{where}: event {k} {caption_key}")))
    return out


def _parallel(entry: dict, times_key: str, captions_key: str, where: str) -> list[tuple]:
    times = F.listing(entry, times_key, where, nonempty=False)
    captions = F.listing(entry, captions_key, where, nonempty=False)
    if len(times) != len(captions):
        raise SourceError(f"{where}: {len(times)} {times_key} but {len(captions)} {captions_key}")
    out = []
    for k, (t, c) in enumerate(zip(times, captions)):
        if not (isinstance(t, list) and len(t) == 2):
            raise SourceError(f"{where}: {times_key}[{k}] must be [start, end] seconds")
        s, e = (F.check_number(x, f"{where}: {times_key}[{k}]") for x in t)
        out.append((s, e, caption_text(c, f"{where}: {captions_key}[{k}]")))
    return out


def _write_database(root: Path, rel: str, obj: dict) -> None:
    path = Path(root) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


@dataclass
class COINParams(DenseParams):
    annotation: str = "COIN.json"
    under: str = "database"
    subsets: list[str] = field(default_factory=lambda: ["training"])


class COIN(DenseAdapter):
    name = "st_coin"
    Params = COINParams
    description = "COIN step annotations (database objects, segment seconds) as DVC"

    def events(self, entry, where):
        return _segments(F.listing(entry, "annotation", where, nonempty=False), "label", where)

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        for vid, seconds in (("-8NaVGbuCaY", 40), ("0ae-KODUnzQ", 24), ("Xq6ACbBZFyU", 20), ("YSes0R7EksY", 16)):
            write_clip(root, f"videos/{vid}.mp4", fps=4, seconds=seconds, seed=seed)
        db = {
            "-8NaVGbuCaY": {
                "recipe_type": 12,
                "class": "AssembleBed",
                "subset": "training",
                "start": 4.0,
                "end": 38.0,
                "duration": 40.1,
                "video_url": "https://www.youtube.com/embed/-8NaVGbuCaY",
                "annotation": [
                    {"id": "116", "segment": [21.0, 38.0], "label": "tighten the screws"},
                    {"id": "115", "segment": [4.0, 20.5], "label": "install the bed board"},
                ],
            },
            "0ae-KODUnzQ": {
                "recipe_type": 40,
                "class": "ChangeGuitarStrings",
                "subset": "validation",
                "start": 1.0,
                "end": 20.0,
                "duration": 24.0,
                "video_url": "https://www.youtube.com/embed/0ae-KODUnzQ",
                "annotation": [{"id": "1", "segment": [1.0, 20.0], "label": "remove the old strings"}],
            },
            "Xq6ACbBZFyU": {
                "recipe_type": 7,
                "class": "MakeCoffee",
                "subset": "training",
                "start": 2.0,
                "end": 31.0,
                "duration": 31.0,
                "video_url": "https://www.youtube.com/embed/Xq6ACbBZFyU",
                "annotation": [
                    {"id": "3", "segment": [2.0, 9.0], "label": "grind the beans"},
                    {"id": "4", "segment": [12.0, 31.0], "label": "pour water"},
                ],
            },
            "YSes0R7EksY": {
                "recipe_type": 7,
                "class": "MakeCoffee",
                "subset": "training",
                "start": 0.0,
                "end": 16.0,
                "duration": 16.0,
                "video_url": "https://www.youtube.com/embed/YSes0R7EksY",
                "annotation": [
                    {"id": "3", "segment": [0.0, 6.0], "label": "grind the beans"},
                    {"id": "5", "segment": [6.0, 16.0], "label": "stir"},
                ],
            },
        }  # fmt: skip  (Xq6ACbBZFyU's file is 20 s long, its annotation says 31: quarantined)
        _write_database(root, cls.Params().annotation, {"version": "1.0", "database": db})


@dataclass
class YouCook2Params(DenseParams):
    annotation: str = "youcookii_annotations_trainval.json"
    under: str = "database"
    subsets: list[str] = field(default_factory=lambda: ["training"])
    video: str = "raw_videos/{subset}/{recipe_type}/{_key}"
    video_extensions: list[str] = field(default_factory=lambda: [".mp4", ".mkv", ".webm"])


class YouCook2(DenseAdapter):
    name = "st_youcook2"
    Params = YouCook2Params
    description = "YouCook2 procedure segments (database objects, segment seconds) as DVC"

    def events(self, entry, where):
        return _segments(F.listing(entry, "annotations", where, nonempty=False), "sentence", where)

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        write_clip(root, "raw_videos/training/101/GLd3aX16zBg.mp4", fps=4, seconds=36, seed=seed)
        write_clip(root, "raw_videos/training/113/xHr8X2Wpmno.webm", fps=4, seconds=30, seed=seed)
        write_clip(root, "raw_videos/validation/201/V53XmPeyjIU.mkv", fps=4, seconds=20, seed=seed)
        db = {
            "GLd3aX16zBg": {"duration": 36.02, "subset": "training", "recipe_type": "101",
                            "video_url": "https://www.youtube.com/watch?v=GLd3aX16zBg",
                            "annotations": [{"segment": [3, 11], "id": 0, "sentence": "spread margarine on the bread"},
                                            {"segment": [14, 25], "id": 1, "sentence": "place cheese on the bread"},
                                            {"segment": [26, 36], "id": 2, "sentence": "toast the sandwich"}]},
            "xHr8X2Wpmno": {"duration": 30.0, "subset": "training", "recipe_type": "113",
                            "video_url": "https://www.youtube.com/watch?v=xHr8X2Wpmno",
                            "annotations": [{"segment": [0, 9], "id": 0, "sentence": "cut a cucumber"},
                                            {"segment": [10, 22], "id": 1, "sentence": "mix the salad"}]},
            "V53XmPeyjIU": {"duration": 20.0, "subset": "validation", "recipe_type": "201",
                            "video_url": "https://www.youtube.com/watch?v=V53XmPeyjIU",
                            "annotations": [{"segment": [1, 8], "id": 0, "sentence": "coat the chicken"}]},
            "noVideoHere": {"duration": 20.0, "subset": "training", "recipe_type": "101",
                            "video_url": "https://www.youtube.com/watch?v=noVideoHere",
                            "annotations": [{"segment": [1, 8], "id": 0, "sentence": "a video lost to attrition"}]},
        }  # fmt: skip
        _write_database(root, cls.Params().annotation, {"database": db})


@dataclass
class ANetParams(DenseParams):
    annotation: str = "captions/train.json"


class ANetCaptions(DenseAdapter):
    name = "st_anet_captions"
    Params = ANetParams
    description = "ActivityNet Captions ({v_id: {duration, timestamps, sentences}}) as DVC"

    def events(self, entry, where):
        return _parallel(entry, "timestamps", "sentences", where)

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        write_clip(root, "videos/v_QOlSCBRmfWY.mp4", fps=4, seconds=30, seed=seed)
        write_clip(root, "videos/v_ehGHCYKzyZ8.mp4", fps=4, seconds=25, seed=seed)
        write_clip(root, "videos/v_--1DO2V4K74.mp4", fps=4, seconds=21, seed=seed)
        data = {
            "v_QOlSCBRmfWY": {"duration": 30.0, "timestamps": [[0.83, 19.86], [17.37, 30.0]],
                              "sentences": ["A young woman is seen standing in a room.", " She then begins dancing."]},
            "v_ehGHCYKzyZ8": {"duration": 25.0, "timestamps": [[0, 5.2], [6.1, 12.4], [12.4, 24.9]],
                              "sentences": ["A man is holding a box.", "He opens it."]},  # one sentence short
            "v_--1DO2V4K74": {"duration": 21.02, "timestamps": [[0.0, 21.02], [3.5, 9.0]],
                              "sentences": ["Two boxes are shown.", "One moves right."]},  # unsorted, ends at the end
        }  # fmt: skip
        _write_database(root, cls.Params().annotation, data)


@dataclass
class GESMParams(DenseParams):
    annotation: str = "GESM_data.json"


class Moment10MGESM(DenseAdapter):
    name = "st_moment10m_gesm"
    Params = GESMParams
    description = "Moment-10M GESM ({video: {timestamps, captions}}, seconds) as DVC"

    def events(self, entry, where):
        return _parallel(entry, "timestamps", "captions", where)

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        write_clip(root, "videos/-7kE8JN7t4c.mp4", fps=4, seconds=30, seed=seed)
        write_clip(root, "videos/0f3TCdjvKpU.mp4", fps=4, seconds=20, seed=seed)
        write_clip(root, "videos/3Z7n0ydAqE4.mp4", fps=4, seconds=16, seed=seed)
        data = {
            "-7kE8JN7t4c": {"timestamps": [[0.0, 7.5], [7.5, 18.0], [18.0, 30.0]],
                            "captions": ["A box appears on the left.", "It slides across.", "It stops on the right."]},
            "0f3TCdjvKpU": {"timestamps": [], "captions": []},  # GVL drops these: filtered
            "3Z7n0ydAqE4": {"timestamps": [[2.25, 6.0], [6.0, 15.5]], "captions": ["Boxes move.", "They stop."]},
            "dQw4w9WgXcQ": {"timestamps": [[0, 2.0]], "captions": ["A video that was not downloaded."]},
        }  # fmt: skip
        _write_database(root, cls.Params().annotation, data)


# --- ViTT -------------------------------------------------------------------------------------------


@dataclass
class ViTTParams(DenseParams):
    annotation: str = "ViTT-annotations.json"
    split_ids: str = "train_id.txt"  # "" = every annotated video
    video: str = "videos/{id}.mp4"


class ViTT(DenseAdapter):
    name = "st_vitt"
    Params = ViTTParams
    description = "ViTT timeline tags (start times only, milliseconds) as point-in-time DVC"

    def list_records(self):
        p = self.params
        keep = None
        if p.split_ids:
            keep = {ln.strip() for ln in self.src.annotation(p.split_ids).read_text().splitlines() if ln.strip()}
        for item in self.items(p.annotation, "jsonl"):  # JSON lines despite the .json name
            vid = item.data.get("id") if isinstance(item.data, dict) else None
            if item.error or not isinstance(vid, str):
                yield self.broken(item, f"bad-{item.locator}", f"{p.annotation} {item.locator}: expected {{id, ...}}")
                continue
            if keep is None or vid in keep:
                yield RawRecord(p.annotation, item.locator, f"{vid}-{item.locator}", item.data)

    def to_sample(self, record: RawRecord) -> Sample:
        item, where = record.data, record.locator
        video = render(self.params.video, item, where)
        clock = self.clock(video)
        tags, blank = [], 0
        for k, a in enumerate(F.listing(item, "annotations", where)):
            ms = F.number(a, "timestamp", f"{where}: annotation {k}", lo=0)
            tag = F.text(a, "tag", f"{where}: annotation {k}", allow_empty=True).strip()
            if tag:
                tags.append((ms / 1000.0, tag))
            else:
                blank += 1
        if blank:
            clock.ops.add(f"vitt_blank_tags_dropped: {blank}")
        if not tags:
            raise SourceError(f"{where}: no non-blank tag", reason="filtered")
        return self.dvc_points(record, video, clock, None, sorted(tags, key=lambda t: t[0]))

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        """Videos at 10 fps; one's last tag is at 27000 ms of a 27 s video (its last frame), one
        tag lies 2 s past its video (quarantined); a video has two annotators; a test id."""
        root = Path(root)
        for vid, seconds in (("--L2", 27), ("Aa0b", 18), ("Zz9y", 12)):
            write_clip(root, f"videos/{vid}.mp4", fps=10, seconds=seconds, seed=seed)
        lines = [
            {"id": "--L2", "annotations": [{"timestamp": 0, "tag": "Intro"}, {"timestamp": 12340, "tag": "Mixing"},
                                           {"timestamp": 27000, "tag": "Result"}]},
            {"id": "Aa0b", "annotations": [{"timestamp": 1500, "tag": "Start"}, {"timestamp": 20000, "tag": "End"}]},
            {"id": "--L2", "annotations": [{"timestamp": 500, "tag": "Opening"}, {"timestamp": 9000, "tag": " "},
                                           {"timestamp": 15250, "tag": "Tasting"}]},
            {"id": "Zz9y", "annotations": [{"timestamp": 2000, "tag": "A test video"}]},
        ]  # fmt: skip
        (root / cls.Params().annotation).write_text("".join(json.dumps(x) + "\n" for x in lines))
        (root / "train_id.txt").write_text("--L2\nAa0b\n")
        (root / "test_id.txt").write_text("Zz9y\n")


# --- VTG-IT dense captions ------------------------------------------------------------------------

_MARK = re.compile(r"(\d+(?:\.\d+)?)\s*(?:-\s*(\d+(?:\.\d+)?)\s*)?seconds?\s*,\s*")


def vtg_events(answer: str, where: str) -> list[tuple]:
    """(start, end | None, caption) of a VTG-IT dense-caption answer."""
    text = vtg_text(answer)
    marks = list(_MARK.finditer(text))
    if not marks:
        raise SourceError(f"{where}: no '<start> - <end> seconds, <caption>' in the answer {answer!r:.80}")
    out = []
    for k, m in enumerate(marks):
        caption = text[m.end() : marks[k + 1].start() if k + 1 < len(marks) else len(text)].strip()
        end = float(m.group(2)) if m.group(2) is not None else None
        out.append((float(m.group(1)), end, caption_text(caption, f"{where}: event {k} caption")))
    return out


@dataclass
class VTGITDenseParams(DenseParams):
    files: list[str] = field(default_factory=lambda: ["VTG-IT/dense_video_caption/*/*.json"])
    video_root: str = ""


class VTGITDense(DenseAdapter):
    name = "st_vtgit_dvc"
    Params = VTGITDenseParams
    description = "VTG-IT dense video captions (times in the answer text) as DVC"

    def list_records(self):
        for pattern in self.params.files:
            for rel in self.src.glob(pattern) if any(c in pattern for c in "*?[") else [pattern]:
                stem = "/".join(rel.split("/")[-2:]).rsplit(".", 1)[0]
                for i, item in enumerate(self.items(rel)):
                    if item.error or not isinstance(item.data, dict) or not isinstance(item.data.get("QA"), list):
                        yield self.broken(item, f"{stem}-{i}", f"{rel} {item.locator}: expected {{video, QA}}")
                        continue
                    for j, qa in enumerate(item.data["QA"]):
                        data = {"video": item.data.get("video"), "qa": qa}
                        yield RawRecord(rel, f"{item.locator} QA {j}", f"{stem}-{i}-{j}", data)

    def to_sample(self, record: RawRecord) -> Sample:
        d, where, root = record.data, record.locator, self.params.video_root
        video = F.check_text(d["video"], f"{where}: video")
        video = f"{root}/{video}" if root else video
        events = vtg_events(F.text(d["qa"], "a", where), where)
        clock = self.clock(video)
        if all(e[1] is None for e in events):
            return self.dvc_points(record, video, clock, None, sorted((s, c) for s, _, c in events))
        if any(e[1] is None for e in events):
            raise SourceError(f"{where}: the answer mixes spans and single times")
        return self.dvc(record, video, clock, None, sorted(events))

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        root = Path(root)
        write_clip(root, "yttemporal/videos/video-0f3TCdjvKpU", fps=4, seconds=30, seed=seed)
        write_clip(root, "youcook2/videos/GLd3aX16zBg.mp4", fps=4, seconds=24, seed=seed)
        q = "Localize a series of activity events in the video, output the start and end timestamp for each event."
        files = {
            "VTG-IT/dense_video_caption/yttemporal/instruct_dvc_yttemporal.json": [
                {"video": "yttemporal/videos/video-0f3TCdjvKpU",
                 "QA": [{"q": q, "a": "0000.0 - 0007.5 seconds, a box appears.  0009.0 - 0030.0 seconds, it slides "
                                      "to the right."}]}],  # fixed-width digits, ends at the video's end
            "VTG-IT/dense_video_caption/youcook2/instruct_dvc_youcook2.json": [
                {"video": "youcook2/videos/GLd3aX16zBg.mp4",
                 "QA": [{"q": q, "a": "3.0 - 9.5 seconds, spread margarine.  12.0 - 20.0 seconds, place cheese."},
                        {"q": q, "a": "<TIME_TWO><TIME_DOT><TIME_ZERO> seconds, the intro.  "
                                      "<TIME_ONE><TIME_FIVE><TIME_DOT><TIME_ZERO> seconds, the cheese."},
                        {"q": q, "a": "No events."}]}],
        }  # fmt: skip
        for rel, items in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(items, indent=1))
