"""Timestamped conversations (temporal grounded conversation, TGC): free text with times inside.

- **LITA ANet-RTL** (NVlabs/LITA ``lita/dataset/temporal_reasoning_dataset.py`` [V]):
  ``temporal_reasoning/activitynet_train_gpt-4-0613_temp_6_f10009.json`` = ``{v_<id>:
  {duration, QA: [{q, a}]}}``; times are written ``<12.3>`` (seconds of the video, LITA's pattern
  ``<\\d*\\.\\d+>`` or ``<\\d+\\.?>``). LITA trains one sample per QA: so does this adapter.
- **Moment-10M** (DCDmllm/Momentor ``scripts/convert_data.py`` [V]): ``Moment-10M_<n>.json`` =
  ``{<ytid>: {<data_type>: [{id, data_type, conversations: {User, Assistant} | [...],
  variables: {moment: [s, e] | [[s, e], ...], SOURCE_CLIP: [s, e], click_position, ...},
  match_score | clip_similarity}]}}``. The text holds ``str.format`` fields (``{moment}``);
  moments and ``SOURCE_CLIP`` become spans (several moments: "a, b and c"), other variables
  their text. ``click_position`` (a time and an image point) has no LAPE form: such entries are
  filtered. Momentor's per-type score thresholds are the default ``thresholds``.
- **Grounded-VideoLLM SFT files** (WHB139426/Grounded-Video-LLM ``datasets/mix_sft.py`` [V]):
  ``[{question_id, video_id, video_file, conversation: [{from, value}], dataset_name}]``; times
  are ``<seconds>`` of the video as decoded (the trainer divides by the decoded duration). The
  schema of ``G-VideoQA-gpt4o-mini-anno.json`` itself was not seen [U]: this reads the mix_sft
  form its loader produces.

Every time tag becomes a frame of the video (the whole video is ``meta.split``) and a
``<TEMP-INPUT>``/``<TEMP-OUTPUT>`` token; a tag outside the video quarantines the record.
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass, field
from pathlib import Path

from ...readers import AnnotationFileError, load_json
from ...sample import Sample
from ...templates import render
from .. import fields as F
from ..base import RawRecord, SourceError
from .common import (
    STVideoAdapter,
    STVideoParams,
    conversation_turns,
    first_turn,
    literal,
    tag_times,
    without_media,
    write_clip,
)

LITA_TIME = re.compile(r"<(?:\d*\.\d+|\d+\.?)>")
SECONDS_TAG = re.compile(r"<\d+(?:\.\d+)?>")


def tagged_turns(turns: list[tuple[str, str]], pattern: re.Pattern, value_of) -> list[tuple[str, str, dict]]:
    """Source turns as templates: ``<video>`` first, time tags as coordinate fields."""
    out = []
    for i, (role, text) in enumerate(turns):
        tpl, values = tag_times(first_turn(text) if i == 0 else without_media(text), pattern, value_of)
        out.append((role, tpl, values))
    return out


# --- LITA ANet-RTL --------------------------------------------------------------------------------


@dataclass
class LITAParams(STVideoParams):
    annotation: str = "temporal_reasoning/activitynet_train_gpt-4-0613_temp_6_f10009.json"
    video: str = "activitynet/videos/{_key}.mp4"


class LITAReasoning(STVideoAdapter):
    name = "st_lita_anet_rtl"
    Params = LITAParams
    description = "LITA ActivityNet-RTL temporal reasoning QA (<12.3> second tags) as TGC"

    def list_records(self):
        rel = self.params.annotation
        data = load_json(self.src, rel)
        if not isinstance(data, dict):
            raise AnnotationFileError(rel, "expected an object keyed by video")
        for key, entry in data.items():
            qas = entry.get("QA") if isinstance(entry, dict) else None
            if not isinstance(qas, list):
                yield RawRecord(rel, f"key {key}", key, None, f"{rel} key {key}: no QA list")
                continue
            for j, qa in enumerate(qas):
                yield RawRecord(rel, f"key {key} QA {j}", f"{key}-{j}", {"_key": key, "qa": qa})

    def to_sample(self, record: RawRecord) -> Sample:
        d, where = record.data, record.locator
        video = render(self.params.video, {"_key": d["_key"]}, where)
        clock = self.clock(video)
        whole = clock.whole
        turns = [("human", F.text(d["qa"], "q", where).strip()), ("gpt", F.text(d["qa"], "a", where).strip())]
        value = lambda m: clock.time(m.group(0)[1:-1], whole, f"{where}: {m.group(0)}")  # noqa: E731
        return self.video_sample(record, tagged_turns(turns, LITA_TIME, value), video=video, clock=clock)

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        root = Path(root)
        write_clip(root, "activitynet/videos/v_QOlSCBRmfWY.mp4", fps=4, seconds=30, seed=seed)
        write_clip(root, "activitynet/videos/v_ehGHCYKzyZ8.mp4", fps=4, seconds=20, seed=seed)
        data = {
            "v_QOlSCBRmfWY": {"duration": 30.0, "QA": [
                {"q": "When does the box stop moving?", "a": "The box stops at <27.5>, after sliding from <1.>."},
                {"q": "What happens after the box reaches the middle?",
                 "a": "Between <15.0> and <30>, it keeps sliding to the right."}]},
            "v_ehGHCYKzyZ8": {"duration": 20.0, "QA": [
                {"q": "Why does the box move?", "a": "It is pushed at <.5>."},
                {"q": "When does it end?", "a": "At <24.0>."}]},  # past the 20 s video: quarantined
        }  # fmt: skip
        path = root / cls.Params().annotation
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))


# --- Moment-10M -----------------------------------------------------------------------------------

MOMENTOR_THRESHOLDS = {
    "segment_caption_data": 0.145,
    "instance_segment_caption_data": 0.146,
    "instance_caption_data": 0.126,
    "appearance_data": 0.129,
    "qa_data": 0.177,
    "instance_qa_data": 0.159,
    "cross_segment_qa_data": 0.211,
    "hypo_scene_data": 0.888,
    "comp_ret_data": 0.195,
    "segment_locate_data": 1.067,
}  # fmt: skip  (Momentor scripts/convert_data.py: kept when match_score / clip_similarity is above)
_SPAN_VARIABLES = ("moment", "SOURCE_CLIP")


@dataclass
class Moment10MParams(STVideoParams):
    files: list[str] = field(default_factory=lambda: ["Moment-10M_0.json", "Moment-10M_1.json"])
    video: str = "videos/{_key}.mp4"
    thresholds: dict = field(default_factory=lambda: dict(MOMENTOR_THRESHOLDS))  # {} keeps every entry
    moment_joiners: list[str] = field(default_factory=lambda: [", ", " and "])  # several moments: "a, b and c"


class Moment10M(STVideoAdapter):
    name = "st_moment10m"
    Params = Moment10MParams
    description = "Moment-10M conversations ({moment} variables in str.format text) as TGC"

    def list_records(self):
        for rel in self.params.files:
            data = load_json(self.src, rel)
            if not isinstance(data, dict):
                raise AnnotationFileError(rel, "expected an object keyed by video")
            for key, types in data.items():
                for dtype, entries in types.items() if isinstance(types, dict) else [("?", types)]:
                    for j, entry in enumerate(entries if isinstance(entries, list) else [entries]):
                        yield RawRecord(rel, f"key {key} {dtype}[{j}]", f"{key}-{dtype}-{j}",
                                        {"_key": key, "type": dtype, "entry": entry})  # fmt: skip

    def _value(self, name: str, value, clock, whole, where: str):
        if name in _SPAN_VARIABLES:
            spans = value if name == "moment" and isinstance(value, list) and value and isinstance(value[0], list) \
                else [value]  # fmt: skip
            out = []
            for k, s in enumerate(spans):
                if not (isinstance(s, list) and len(s) == 2):
                    raise SourceError(f"{where}: variable {name} must be [start, end] seconds (or a list of them)")
                out.append(clock.span(s[0], s[1], whole, f"{where}: {name}[{k}]"))
            return out
        if name == "click_position":
            raise SourceError(f"{where}: click_position (a time and an image point) has no LAPE form",
                              reason="filtered")  # fmt: skip
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise SourceError(f"{where}: variable {name} is {type(value).__name__}, not text")

    def _turn(self, text: str, variables: dict, resolved: dict, clock, whole, where: str) -> tuple[str, dict]:
        """Momentor's ``str.format`` text as a template: fields become values, spans coordinates."""
        out, values = [], {}
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError as err:
            raise SourceError(f"{where}: not a format string: {err}") from None
        for literal_text, name, spec, conv in parsed:
            out.append(literal(literal_text))
            if name is None:
                continue
            if spec or conv or name not in variables:
                raise SourceError(f"{where}: field {{{name}}} has no variable (or a format spec)")
            if name not in resolved:
                resolved[name] = self._value(name, variables[name], clock, whole, where)
            value = resolved[name]
            if isinstance(value, str):
                out.append(literal(value))
                continue
            j1, j2 = self.params.moment_joiners
            fields = []
            for span in value:
                key = f"m{len(values)}"
                values[key] = span
                fields.append("{" + key + "}")
            out.append(fields[0] if len(fields) == 1 else j1.join(fields[:-1]) + j2 + fields[-1])
        return "".join(out), values

    def to_sample(self, record: RawRecord) -> Sample:
        p, d, where = self.params, record.data, record.locator
        entry = d["entry"]
        if not isinstance(entry, dict):
            raise SourceError(f"{where}: expected an object, got {type(entry).__name__}")
        threshold = p.thresholds.get(d["type"]) if p.thresholds else None
        if threshold is not None:
            score = entry.get("match_score", entry.get("clip_similarity"))
            if score is None or F.check_number(score, f"{where}: score") <= threshold:
                raise SourceError(f"{where}: score {score} is not above {d['type']}'s {threshold}", reason="filtered")
        conversations = F.need(entry, "conversations", where)
        rounds = [conversations] if isinstance(conversations, dict) else conversations
        if not isinstance(rounds, list) or not rounds:
            raise SourceError(f"{where}: conversations must be an object or a list of them")
        turns = []
        for k, r in enumerate(rounds):
            if not isinstance(r, dict):
                raise SourceError(f"{where}: conversations[{k}] is not an object")
            turns += [("human", F.text(r, "User", where)), ("gpt", F.text(r, "Assistant", where))]
        variables = F.mapping(entry, "variables", where, default={})
        video = render(p.video, {"_key": d["_key"]}, where)
        clock = self.clock(video)
        whole, resolved, templates = clock.whole, {}, []
        for i, (role, text) in enumerate(turns):
            tpl, values = self._turn(first_turn(text) if i == 0 else without_media(text), variables, resolved, clock,
                                     whole, where)  # fmt: skip
            templates.append((role, tpl, values))
        return self.video_sample(record, templates, video=video, clock=clock)

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        root = Path(root)
        write_clip(root, "videos/-7kE8JN7t4c.mp4", fps=4, seconds=40, seed=seed)
        write_clip(root, "videos/0f3TCdjvKpU.mp4", fps=4, seconds=24, seed=seed)
        part0 = {
            "-7kE8JN7t4c": {
                "segment_caption_data": [
                    {"id": 0, "data_type": "segment_caption_data", "match_score": 0.31,
                     "conversations": {"User": "What happens during {moment}?", "Assistant": "A box slides right."},
                     "variables": {"moment": [4.0, 12.5]}},
                    {"id": 1, "data_type": "segment_caption_data", "match_score": 0.02,  # below the threshold
                     "conversations": {"User": "Describe {moment}.", "Assistant": "Nothing."},
                     "variables": {"moment": [0.0, 2.0]}}],
                "cross_segment_qa_data": [
                    {"id": 2, "data_type": "cross_segment_qa_data", "clip_similarity": 0.5,
                     "conversations": [{"User": "Where does the {object} go after {SOURCE_CLIP}?",
                                        "Assistant": "It appears again during {moment}."},
                                       {"User": "Is it the same {object}?", "Assistant": "Yes."}],
                     "variables": {"object": "red box", "SOURCE_CLIP": [0.0, 8.0], "moment": [[10.0, 14.0],
                                                                                             [20.5, 24.0]]}}],
                "appearance_data": [
                    {"id": 3, "data_type": "appearance_data", "match_score": 0.4,
                     "conversations": {"User": "What is at {click_position}?", "Assistant": "A box."},
                     "variables": {"click_position": [3.0, [0.4, 0.6]]}}]}}  # fmt: skip
        part1 = {
            "0f3TCdjvKpU": {
                "segment_locate_data": [
                    {
                        "id": 0,
                        "data_type": "segment_locate_data",
                        "match_score": 1.2,
                        "conversations": {"User": "When does the box reach the edge?", "Assistant": "In {moment}."},
                        "variables": {"moment": [18.0, 24.0]},
                    },
                    {
                        "id": 1,
                        "data_type": "segment_locate_data",
                        "match_score": 1.3,
                        "conversations": {"User": "When does it vanish?", "Assistant": "In {moment}."},
                        "variables": {"moment": [20.0, 31.0]},
                    },
                ]
            }
        }
        # fmt: skip  (the last moment lies past the 24 s video: quarantined)
        p = cls.Params()
        (root / p.files[0]).write_text(json.dumps(part0, indent=1))
        (root / p.files[1]).write_text(json.dumps(part1, indent=1))


# --- Grounded-VideoLLM SFT form -------------------------------------------------------------------


@dataclass
class GVLParams(STVideoParams):
    annotation: str = "mix_sft/G-VideoQA.json"
    video_root: str = ""  # video_file is relative to GVL's data root ("<folder>/videos/<id>.mp4")


class GVLGroundedQA(STVideoAdapter):
    name = "st_gvl_grounded_qa"
    Params = GVLParams
    description = "Grounded-VideoLLM SFT conversations (<seconds> tags over the decoded video) as TGC"

    def list_records(self):
        rel = self.params.annotation
        for i, item in enumerate(self.items(rel)):
            if item.error or not isinstance(item.data, dict):
                yield self.broken(item, f"index{i}", f"{rel} {item.locator}: expected an object")
                continue
            qid = item.data.get("question_id")
            yield RawRecord(rel, item.locator, f"{qid}-{i}" if isinstance(qid, (str, int)) else f"index{i}", item.data)

    def to_sample(self, record: RawRecord) -> Sample:
        item, where, root = record.data, record.locator, self.params.video_root
        video = F.text(item, "video_file", where)
        video = f"{root}/{video}" if root else video
        clock = self.clock(video)
        whole = clock.whole
        value = lambda m: clock.time(m.group(0)[1:-1], whole, f"{where}: {m.group(0)}")  # noqa: E731
        turns = tagged_turns(conversation_turns(item.get("conversation"), where), SECONDS_TAG, value)
        return self.video_sample(record, turns, video=video, clock=clock)

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        root = Path(root)
        write_clip(root, "activitynet/videos/v_QOlSCBRmfWY.mp4", fps=4, seconds=30, seed=seed)
        write_clip(root, "qvhighlights/videos/j7rJstUseKg_360.0_510.0.mp4", fps=2, seconds=40, seed=seed)
        items = [
            {"question_id": "v_QOlSCBRmfWY_0", "video_id": "v_QOlSCBRmfWY",
             "video_file": "activitynet/videos/v_QOlSCBRmfWY.mp4", "dataset_name": "G-VideoQA",
             "conversation": [{"from": "human", "value": "<image>\nWhat does the box do from <2.5> to <10.0>?"},
                              {"from": "gpt", "value": "It slides right, from <2.5> to <10.0>."},
                              {"from": "human", "value": "And then?"},
                              {"from": "gpt", "value": "It stops at <29.75>."}]},
            {"question_id": "j7rJstUseKg_0", "video_id": "j7rJstUseKg",
             "video_file": "qvhighlights/videos/j7rJstUseKg_360.0_510.0.mp4", "dataset_name": "G-VideoQA",
             "conversation": [{"from": "human", "value": "<image>\nWhen is the box in the middle?"},
                              {"from": "gpt", "value": "From <16.0> to <24.5>."}]},
            {"question_id": "j7rJstUseKg_1", "video_id": "j7rJstUseKg",
             "video_file": "qvhighlights/videos/j7rJstUseKg_360.0_510.0.mp4", "dataset_name": "G-VideoQA",
             "conversation": [{"from": "human", "value": "<image>\nWhen does it end?"},
                              {"from": "gpt", "value": "At <150.0>."}]},  # past the clip file's 40 s
        ]  # fmt: skip
        path = root / cls.Params().annotation
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(items, indent=1))
