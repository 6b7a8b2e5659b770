"""Single moments: a query (or a caption) and one time span of a video, as ST-Align TVG / TR.

- **VTimeLLM stage 2** (huangb23/VTimeLLM ``docs/data.md`` [V]): ``stage2.json`` =
  ``[{source, id: <YouTube id>, conversations, meta: {split: [s, e] s, duration, token: {"<s0>": s, ...}}}]``.
  ``<sN>``/``<eN>`` in the text are seconds **relative to** ``meta.split[0]``; ``split`` absent =
  the whole video. Each human/gpt pair is one sample; its task follows from where the tokens
  are: in the question → TR, in the answer with several events → DVC, one event → TVG.
- **InternVid-G** (HawkEye ``internvid_g/README.md`` [V]): ``train.jsonl`` lines
  ``{video: "<ytid>.mp4", caption, start_sec, end_sec, neg_start_sec, neg_end_sec}``, absolute
  seconds, no duration (the video is probed). TR/TVG per line; DVC per video (its moments,
  grouped over the whole file, at least ``min_events``).
- **HiREST** (j-min/HiREST ``data/splits/all_data_<split>.json`` [V]): ``{query: {"<ytid>.mp4":
  {relevant, clip, v_duration, bounds: [s, e], steps: [{index, heading, absolute_bounds}]}}}``,
  integer seconds. TVG = ``bounds``; ``clip: false`` entries (``bounds [0, 0]``) are filtered.
  Steps (DVC) lie in ``bounds``, which becomes ``meta.split``.
- **QuerYD** (GVLd ``download_queryd.py`` [V]): ``raw_captions_combined_filtered.pkl`` (``{"video-<ytid>":
  [[word, ...], ...]}``) and ``times_captions_combined_filtered.pkl`` (``{key: [[s, e], ...]}``,
  seconds [I]), read with :mod:`m4_pipeline.readers.safe_pickle` (no class or global is ever
  loaded). ``start == end`` is a point answer.
- **DiDeMo** (LisaAnne/LocalizingMoments ``data/README.md`` [V]): ``<split>_data.json`` =
  ``[{annotation_id, description, video, times: [[a, b] x 4 annotators], ...}]``; ``a``/``b`` are
  5-second chunk indices 0-5 and chunk ``[a, b]`` covers ``[5a, min(5(b+1), video length)]`` s.
  The annotators' most frequent pair is used (first in order on a tie, as Grounded-VideoLLM does).
- **VTG-IT moment retrieval** (gyxxyg/VTG-LLM ``process_grounding_data.py`` [V]): ``{video,
  QA: [{q, a}]}``, the query quoted in ``q``, the times in ``a`` ("... happens in 12.0 - 16.0
  seconds." or one time); VTG-LLM's fixed-width form (``0012.0`` or ``<TIME_ONE>...`` digit tokens) is
  read too. The folder names under ``VTG-IT/`` are a parameter.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ...coords import Ops, Time
from ...readers import AnnotationFileError, load_json
from ...sample import Sample
from ...templates import render
from .. import fields as F
from ..base import RawRecord, SourceError
from .common import STVideoAdapter, STVideoParams, caption_text, event_list, first_turn, tag_times, write_clip

TIME_DIGITS = {"ZERO": "0", "ONE": "1", "TWO": "2", "THREE": "3", "FOUR": "4", "FIVE": "5", "SIX": "6",
               "SEVEN": "7", "EIGHT": "8", "NINE": "9", "DOT": "."}  # fmt: skip
_TIME_TOKEN = re.compile(r"<TIME_(ZERO|ONE|TWO|THREE|FOUR|FIVE|SIX|SEVEN|EIGHT|NINE|DOT)>")
NUMBER = re.compile(r"\d+(?:\.\d+)?")


def vtg_text(text: str) -> str:
    """VTG-LLM's digit tokens (``<TIME_ONE><TIME_DOT>...``) as plain digits."""
    return _TIME_TOKEN.sub(lambda m: TIME_DIGITS[m.group(1)], text)


def sentence(text: str) -> str:
    text = text.strip()
    return text if not text or text[-1] in ".!?" else text + "."


@dataclass
class MomentParams(STVideoParams):
    tvg_prompt: str = "@st/tvg_prompt"
    tvg_answer: str = "@st/tvg_answer"
    tvg_point_prompt: str = "@st_video/tvg_point_prompt"
    tvg_point_answer: str = "@st_video/tvg_point_answer"
    tr_prompt: str = "@st/tr_prompt"
    dvc_prompt: str = "@st_video/dvc_prompt"
    dvc_event: str = "@st_video/dvc_event"
    event_separator: str = " "


class MomentAdapter(STVideoAdapter):
    """The sample shapes of a moment: TVG (span or point), TR, DVC of a few spans."""

    Params = MomentParams

    def tvg(self, record, video, clock, clip, query: str, start, end):
        p, notes, within = self.params, {}, clip or clock.whole
        what = f"{record.locator}: moment"
        start, end = F.check_number(start, f"{what} start"), F.check_number(end, f"{what} end")
        if start == end:
            values = {"query": query, "_time": clock.time(start, within, what)}
            prompt, answer = p.tvg_point_prompt, p.tvg_point_answer
        else:
            values = {"query": query, "_span": clock.span(start, end, within, what)}
            prompt, answer = p.tvg_prompt, p.tvg_answer
        turns = [("human", self.template(notes, prompt, record, "human"), values),
                 ("gpt", self.template(notes, answer, record, "gpt"), values)]  # fmt: skip
        return self.video_sample(record, turns, video=video, clock=clock, clip=clip, notes=notes)

    def tr(self, record, video, clock, clip, caption: str, start, end):
        notes, within = {}, clip or clock.whole
        values = {"caption": sentence(caption), "_span": clock.span(start, end, within, f"{record.locator}: moment")}
        turns = [("human", self.template(notes, self.params.tr_prompt, record, "human"), values),
                 ("gpt", "{caption}", values)]  # fmt: skip
        return self.video_sample(record, turns, video=video, clock=clock, clip=clip, notes=notes)

    def dvc(self, record, video, clock, clip, events: list[tuple]):
        """``events``: (start, end, caption) in seconds, ordered by start."""
        p, notes, within = self.params, {}, clip or clock.whole
        spans = [{"_span": clock.span(s, e, within, f"{record.locator}: event {i}"), "caption": sentence(c)}
                 for i, (s, e, c) in enumerate(events)]  # fmt: skip
        answer, values = event_list(self.template(notes, p.dvc_event, record, "event"), spans, p.event_separator)
        turns = [("human", self.template(notes, p.dvc_prompt, record, "human"), {}), ("gpt", answer, values)]
        return self.video_sample(record, turns, video=video, clock=clock, clip=clip, notes=notes)


# --- VTimeLLM stage 2 -----------------------------------------------------------------------------

_VTIME_TOKEN = re.compile(r"<[se]\d+>")
TASKS = ("tvg", "dvc", "tr")


def vtimellm_task(human: str, gpt: str) -> str:
    """TR when the question holds times, DVC when the answer holds several events, else TVG."""
    if _VTIME_TOKEN.search(human):
        return "tr"
    starts = set(re.findall(r"<s(\d+)>", gpt))
    if len(starts) > 1:
        return "dvc"
    if _VTIME_TOKEN.search(gpt):
        return "tvg"
    return "none"


@dataclass
class VTimeLLMParams(STVideoParams):
    annotation: str = "stage2.json"
    video: str = "videos/{id}.mp4"  # the full YouTube video; meta.split names the clip
    tasks: list[str] = field(default_factory=lambda: list(TASKS))


class VTimeLLMStage2(STVideoAdapter):
    name = "st_vtimellm"
    Params = VTimeLLMParams
    description = "VTimeLLM stage-2 <sN>/<eN> conversations (seconds relative to meta.split) as TVG / DVC / TR"

    def list_records(self):
        rel, tasks = self.params.annotation, set(self.params.tasks)
        for i, item in enumerate(self.items(rel)):
            if item.error or not isinstance(item.data, dict):
                yield self.broken(item, f"item{i}", f"{rel} {item.locator}: expected an object")
                continue
            conv = item.data.get("conversations")
            vid = str(item.data.get("id", ""))
            if not isinstance(conv, list) or len(conv) < 2 or not all(isinstance(t, dict) for t in conv):
                yield self.broken(item, f"{vid}-{i}", f"{rel} {item.locator}: conversations is not a list of turns")
                continue
            for j in range(len(conv) // 2):
                task = vtimellm_task(str(conv[2 * j].get("value", "")), str(conv[2 * j + 1].get("value", "")))
                if task in tasks or task == "none":
                    yield RawRecord(rel, f"{item.locator} pair {j}", f"{vid}-{i}-{j}", {"item": item.data, "pair": j,
                                                                                        "task": task})  # fmt: skip

    def to_sample(self, record: RawRecord) -> Sample:
        item, j, where = record.data["item"], record.data["pair"], record.locator
        if record.data["task"] == "none":
            raise SourceError(f"{where}: no <sN>/<eN> time token in the pair", reason="filtered")
        meta = F.mapping(item, "meta", where)
        tokens = F.mapping(meta, "token", where)
        video = render(self.params.video, item, where)
        clock = self.clock(video, Ops())
        split = meta.get("split")
        if split is None:
            clip, offset = None, 0.0
        else:
            if not (isinstance(split, list) and len(split) == 2):
                raise SourceError(f"{where}: meta.split must be [start, end] seconds, got {split!r:.60}")
            clip = clock.clip(split[0], split[1], f"{where}: meta.split")
            offset = F.check_number(split[0], f"{where}: meta.split[0]", lo=0)
        within = clip or clock.whole

        def value(m: re.Match) -> Time:
            if m.group(0) not in tokens:
                raise SourceError(f"{where}: {m.group(0)} is not in meta.token")
            t = F.check_number(tokens[m.group(0)], f"{where}: meta.token {m.group(0)}", lo=0)
            return clock.time(offset + t, within, f"{where}: {m.group(0)} ({t} s after the split start)")

        conv = F.listing(item, "conversations", where)
        if len(conv) < 2 * j + 2:
            raise SourceError(f"{where}: the conversation has no pair {j}")
        human = F.text(conv[2 * j], "value", f"{where}: question")
        gpt = F.text(conv[2 * j + 1], "value", f"{where}: answer")
        turns = [("human", *tag_times(first_turn(human), _VTIME_TOKEN, value)),
                 ("gpt", *tag_times(gpt.strip(), _VTIME_TOKEN, value))]  # fmt: skip
        return self.video_sample(record, turns, video=video, clock=clock, clip=clip)

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        """Two YouTube videos at 5 fps; one item's split starts at 12.4 s, one has no split, one
        token lies past its split (quarantined), an id appears twice."""
        root = Path(root)
        write_clip(root, "videos/3n3oCNerzV0.mp4", fps=5, seconds=40, seed=seed)
        write_clip(root, "videos/-a_Zq9Xk2Lc.mp4", fps=5, seconds=24, seed=seed)
        dvc = [{"from": "human", "value": "<video>\nCould you please detail the events that took place during "
                                          "different time segments in the video?"},
               {"from": "gpt", "value": "From <s0> to <e0>, a box slides right. From <s1> to <e1>, it stops."},
               {"from": "human", "value": "What happens from <s2> to <e2>?"},
               {"from": "gpt", "value": "The box stops near the edge."},
               {"from": "human", "value": "When does the box start to slide?"},
               {"from": "gpt", "value": "From <s0> to <e0>."}]  # fmt: skip
        items = [
            {"source": "internvid", "id": "3n3oCNerzV0", "conversations": dvc,
             "meta": {"split": [12.4, 36.6], "duration": 24.2,
                      "token": {"<s0>": 0, "<e0>": 9.4, "<s1>": 15.0, "<e1>": 24.2, "<s2>": 15.0, "<e2>": 20.0}}},
            {"source": "internvid", "id": "-a_Zq9Xk2Lc", "conversations": dvc[4:],
             "meta": {"duration": 24.0, "token": {"<s0>": 3.2, "<e0>": 11.0}}},  # no split: the whole video
            {"source": "internvid", "id": "3n3oCNerzV0", "conversations": dvc[:2],
             "meta": {"split": [0.0, 10.0], "duration": 10.0,
                      "token": {"<s0>": 1.0, "<e0>": 4.0, "<s1>": 6.0, "<e1>": 13.5}}},  # <e1> past the split
        ]  # fmt: skip
        (root / cls.Params().annotation).write_text(json.dumps(items, indent=1))


# --- InternVid-G ----------------------------------------------------------------------------------


@dataclass
class InternVidGParams(MomentParams):
    annotation: str = "train.jsonl"
    video_root: str = "videos"
    tasks: list[str] = field(default_factory=lambda: ["tr", "tvg", "dvc"])
    min_events: int = 2  # DVC: a video needs at least this many moments


class InternVidG(MomentAdapter):
    name = "st_internvid_g"
    Params = InternVidGParams
    description = "InternVid-G moments (absolute seconds, video probed) as TR / TVG, grouped per video as DVC"

    def list_records(self):
        p, rel = self.params, self.params.annotation
        groups: dict[str, list] = {}
        for item in self.items(rel, "jsonl"):
            if item.error or not isinstance(item.data, dict) or not isinstance(item.data.get("video"), str):
                yield self.broken(item, f"bad-{item.locator}", f"{rel} {item.locator}: expected an object with a video")
                continue
            for task in ("tr", "tvg"):
                if task in p.tasks:
                    data = {"task": task, "line": item.data}
                    yield RawRecord(rel, f"{item.locator} {task}", f"{task}-{item.locator}", data)
            groups.setdefault(item.data["video"], []).append([item.locator, item.data])
        if "dvc" in p.tasks:
            for video, lines in groups.items():
                where = f"video {video} ({', '.join(loc for loc, _ in lines)})"
                yield RawRecord(rel, where, f"dvc-{video}", {"task": "dvc", "video": video, "lines": lines})

    def to_sample(self, record: RawRecord) -> Sample:
        p, d, where = self.params, record.data, record.locator
        if d["task"] == "dvc":
            lines = [line for _, line in d["lines"]]
            if len(lines) < p.min_events:
                raise SourceError(f"{where}: {len(lines)} moment(s) < min_events {p.min_events}", reason="filtered")
            events = sorted(
                (
                    F.number(x, "start_sec", where),
                    F.number(x, "end_sec", where),
                    caption_text(F.need(x, "caption", where), f"{where}: caption"),
                )
                for x in lines
            )
            video = f"{p.video_root}/{d['video']}" if p.video_root else d["video"]  # fmt: skip
            return self.dvc(record, video, self.clock(video), None, events)
        line = d["line"]
        video = f"{p.video_root}/{F.text(line, 'video', where)}" if p.video_root else F.text(line, "video", where)
        start, end = F.number(line, "start_sec", where), F.number(line, "end_sec", where)
        caption = caption_text(F.need(line, "caption", where), f"{where}: caption")
        clock = self.clock(video)
        if d["task"] == "tr":
            return self.tr(record, video, clock, None, caption, start, end)
        return self.tvg(record, video, clock, None, caption, start, end)

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        root = Path(root)
        write_clip(root, "videos/xHr8X2Wpmno.mp4", fps=5, seconds=30, seed=seed)
        write_clip(root, "videos/V53XmPeyjIU.mp4", fps=5, seconds=20, seed=seed)
        lines = [
            {"video": "xHr8X2Wpmno.mp4", "caption": "a box slides to the right", "start_sec": 2.0, "end_sec": 9.5,
             "neg_start_sec": 20.0, "neg_end_sec": 27.0},
            {"video": "V53XmPeyjIU.mp4", "caption": "the square appears", "start_sec": 0.0, "end_sec": 4.0,
             "neg_start_sec": 10.0, "neg_end_sec": 14.0},
            {"video": "xHr8X2Wpmno.mp4", "caption": "the box reaches the edge", "start_sec": 21.0, "end_sec": 30.0,
             "neg_start_sec": 2.0, "neg_end_sec": 9.0},  # ends exactly at the video's end; not adjacent to line 1
            {"video": "V53XmPeyjIU.mp4", "caption": "the square leaves", "start_sec": 16.0, "end_sec": 25.0,
             "neg_start_sec": 0.0, "neg_end_sec": 4.0},  # past the 20 s video: quarantined
        ]  # fmt: skip
        (root / cls.Params().annotation).write_text("".join(json.dumps(x) + "\n" for x in lines))


# --- HiREST ---------------------------------------------------------------------------------------


@dataclass
class HiRESTParams(MomentParams):
    splits: list[str] = field(default_factory=lambda: ["train"])
    annotation: str = "data/splits/all_data_{split}.json"
    video_root: str = "videos"
    tasks: list[str] = field(default_factory=lambda: ["tvg", "dvc"])


class HiREST(MomentAdapter):
    name = "st_hirest"
    Params = HiRESTParams
    description = "HiREST moments (bounds, integer seconds) as TVG and their steps as DVC inside the moment"

    def list_records(self):
        p = self.params
        for split in p.splits:
            rel = p.annotation.replace("{split}", split)
            data = load_json(self.src, rel)
            if not isinstance(data, dict):
                raise AnnotationFileError(rel, "expected an object keyed by query")
            for query, videos in data.items():
                for video, entry in videos.items() if isinstance(videos, dict) else [("?", videos)]:
                    for task in p.tasks:
                        yield RawRecord(rel, f"key {query} / {video} {task}", f"{split}-{task}-{video}-{query}",
                                        {"task": task, "query": query, "video": video, "entry": entry})  # fmt: skip

    def to_sample(self, record: RawRecord) -> Sample:
        p, d, where = self.params, record.data, record.locator
        entry = d["entry"]
        if not isinstance(entry, dict):
            raise SourceError(f"{where}: expected an object, got {type(entry).__name__}")
        if F.need(entry, "clip", where) is not True:
            raise SourceError(f"{where}: clip: false (no moment of the video answers the query)", reason="filtered")
        bounds = F.listing(entry, "bounds", where)
        if len(bounds) != 2:
            raise SourceError(f"{where}: bounds must be [start, end] seconds, got {bounds!r:.60}")
        video = f"{p.video_root}/{d['video']}" if p.video_root else d["video"]
        clock = self.clock(video)
        if d["task"] == "tvg":
            return self.tvg(record, video, clock, None, caption_text(d["query"], f"{where}: query"), *bounds)
        steps = F.listing(entry, "steps", where, nonempty=False)
        if not steps:
            raise SourceError(f"{where}: the moment has no steps", reason="filtered")
        clip = clock.clip(bounds[0], bounds[1], f"{where}: bounds")
        events = []
        for k, step in enumerate(steps):
            b = F.listing(step, "absolute_bounds", f"{where}: step {k}")
            if len(b) != 2:
                raise SourceError(f"{where}: step {k}: absolute_bounds must be [start, end]")
            s, e = (F.check_number(x, f"{where}: step {k} absolute_bounds") for x in b)
            events.append((s, e, caption_text(F.need(step, "heading", where), f"{where}: step {k} heading")))
        return self.dvc(record, video, clock, clip, sorted(events))

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        root = Path(root)
        for vid, seconds in (("_7urSjT6sQY", 40), ("IUK9kqnz5Hc", 30), ("d1iOnCn2ZAQ", 36)):
            write_clip(root, f"videos/{vid}.mp4", fps=4, seconds=seconds, seed=seed)
        data = {
            "Make a Plaster Mask": {
                "IUK9kqnz5Hc.mp4": {"relevant": True, "clip": False, "v_duration": 30.0, "bounds": [0, 0], "steps": []},
                "_7urSjT6sQY.mp4": {"relevant": True, "clip": True, "v_duration": 40.0, "bounds": [5, 29],
                                    "steps": [{"index": 0, "heading": "clean out the face", "absolute_bounds": [5, 12]},
                                              {"index": 1, "heading": "apply tissue ", "absolute_bounds": [12, 20]},
                                              {"index": 2, "heading": "dry it out", "absolute_bounds": [20, 29]}]},
            },
            "Make a Granny Knot": {
                "d1iOnCn2ZAQ.mp4": {"relevant": True, "clip": True, "v_duration": 36.0, "bounds": [11, 36],
                                    "steps": []},  # ends at the video's end; no steps
                "_7urSjT6sQY.mp4": {"relevant": True, "clip": True, "v_duration": 40.0, "bounds": [2, 9],
                                    "steps": [{"index": 0, "heading": "Pull on ropes", "absolute_bounds": [2, 6]},
                                              {"index": 1, "heading": "Repeat", "absolute_bounds": [6, 12]}]},
            },  # the second step of the last entry ends past its moment: quarantined
        }  # fmt: skip
        path = root / cls.Params().annotation.replace("{split}", "train")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))
