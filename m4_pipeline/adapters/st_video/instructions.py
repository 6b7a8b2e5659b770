"""Instruction collections: VideoChat2-IT (one adapter, a subset table) and LLaVA-style video
conversation files (VCG+ 112K; the caption copies in :mod:`.captions` share the class).

**VideoChat2-IT** (HF ``OpenGVLab/VideoChat2-IT``; paths and media roots from VC2's
``configs/instruction_data.py`` [V])::

    video/<task>/<dataset>/train.json   [{video, QA: [{i, q, a}, ...], start?, end?}, ...]
    <media root of the subset>/<video>

``i`` is the instruction (VC2 puts the first QA's ``i`` before the conversation), ``q`` the
question (empty in caption sets), ``a`` the answer; ``start``/``end`` (seconds, some subsets)
name a clip of the video, which becomes ``meta.split``. The media roots differ per installation:
``media_roots`` overrides the table's defaults. One record per item (its QA list is the
conversation, in order); ids are ``<subset>-<index>`` (videos repeat).

**LLaVA-style** ``[{id?, video, conversations: [{from, value}]}]``: the turns as they are, with
``<video>`` moved to the start of the first human turn (files put ``<video>`` or ``<image>``
before or after the text, or none).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ...coords import Ops
from ...sample import Sample
from .. import fields as F
from ..base import RawRecord, SourceError
from .common import STVideoAdapter, STVideoParams, conversation_turns, first_turn, literal, without_media, write_clip

# subset -> (annotation file, default media root); the task of each is named by its recipe source
SUBSETS: dict[str, tuple[str, str]] = {
    "caption_textvr": ("video/caption/textvr/train.json", "TextVR/Video"),
    "caption_youcook2": ("video/caption/youcook2/train.json", "youcook2/split_videos"),
    "caption_webvid": ("video/caption/webvid/train.json", "WebVid2M"),
    "caption_videochat": ("video/caption/videochat/train.json", "WebVid10M"),
    "classification_k710": ("video/classification/k710/train.json", "kinetics"),
    "classification_ssv2": ("video/classification/ssv2/train.json", "ssv2_video"),
    "conversation_videochat1": ("video/conversation/videochat1/train.json", "WebVid10M"),
    "conversation_videochat2": ("video/conversation/videochat2/train.json", "internvid"),
    "conversation_videochatgpt": ("video/conversation/videochatgpt/train.json", "ANet/ANet_320p_fps30"),
    "reasoning_next_qa": ("video/reasoning/next_qa/train.json", "nextqa"),
    "reasoning_clevrer_qa": ("video/reasoning/clevrer_qa/train.json", "clevrer/video_train"),
    "reasoning_clevrer_mc": ("video/reasoning/clevrer_mc/train.json", "clevrer/video_train"),
    "vqa_ego_qa": ("video/vqa/ego_qa/train.json", "EgoQA/split_videos"),
    "vqa_webvid_qa": ("video/vqa/webvid_qa/train.json", "WebVid2M"),
}


@dataclass
class VC2Params(STVideoParams):
    subsets: list[str] = field(default_factory=lambda: sorted(SUBSETS))
    annotation_root: str = ""  # folder holding video/<task>/<dataset>/train.json
    media_roots: dict = field(default_factory=dict)  # subset -> media folder (overrides the table)


class VideoChat2IT(STVideoAdapter):
    name = "st_videochat2_it"
    Params = VC2Params
    description = "VideoChat2-IT {video, QA:[{i,q,a}]} collection (conversation, QA, classification, captions)"

    def preflight(self) -> None:
        from ...errors import BuildError

        unknown = sorted(set(self.params.subsets) - set(SUBSETS))
        if unknown:
            raise BuildError(f"{self.source_name}: unknown VideoChat2-IT subset(s) {unknown}; known: {sorted(SUBSETS)}")

    def _annotation(self, subset: str) -> str:
        rel = SUBSETS[subset][0]
        return f"{self.params.annotation_root.rstrip('/')}/{rel}" if self.params.annotation_root else rel

    def list_records(self):
        self.preflight()
        for subset in self.params.subsets:
            rel = self._annotation(subset)
            for i, item in enumerate(self.items(rel)):
                sid = f"{subset}-{i}"
                if item.error or not isinstance(item.data, dict):
                    yield self.broken(item, sid, f"{rel} {item.locator}: expected an object")
                    continue
                yield RawRecord(rel, item.locator, sid, {"subset": subset, "item": item.data})

    def to_sample(self, record: RawRecord) -> Sample:
        subset, item, where = record.data["subset"], record.data["item"], record.locator
        root = self.params.media_roots.get(subset, SUBSETS[subset][1])
        video = f"{root.rstrip('/')}/{F.text(item, 'video', where)}" if root else F.text(item, "video", where)
        turns = []
        for j, qa in enumerate(F.listing(item, "QA", where)):
            if not isinstance(qa, dict):
                raise SourceError(f"{where}: QA[{j}] is not an object")
            instruction = F.text(qa, "i", where, allow_empty=True, default="").strip() if j == 0 else ""
            question = F.text(qa, "q", where, allow_empty=True, default="").strip()
            human = "\n".join(t for t in (instruction, question) if t)
            if not human:
                raise SourceError(f"{where}: QA[{j}] has neither an instruction nor a question")
            turns += [("human", literal(first_turn(human) if j == 0 else without_media(human)), {}),
                      ("gpt", literal(F.text(qa, "a", where).strip()), {})]  # fmt: skip
        clock = self.clock(video, Ops())
        clip = None
        if item.get("start") is not None or item.get("end") is not None:
            clip = clock.clip(F.need(item, "start", where), F.need(item, "end", where), f"{where}: start/end")
        return self.video_sample(record, turns, video=video, clock=clock, clip=clip)

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        import json

        root = Path(root)
        for k, (subset, (rel, media)) in enumerate(sorted(SUBSETS.items())):
            kind = subset.split("_", 1)[0]
            items = []
            for v in range(2):
                video = f"{subset}_{v}.mp4" if v == 0 else f"sub/{subset}_{v}.mp4"  # nested paths exist too
                write_clip(root, f"{media}/{video}", fps=5, seconds=8 + 2 * v, seed=seed + k)
                if kind == "caption":
                    qa = [{"i": "Describe the following video concisely.", "q": "", "a": f"a box slides ({subset})."}]
                elif kind == "classification":
                    qa = [{"i": "Watch the video and pick the action.", "q": "What is happening?", "a": "sliding"}]
                elif kind == "conversation":
                    qa = [{"i": "", "q": "What moves?", "a": "A coloured box."},
                          {"i": "", "q": "Where does it go?", "a": "To the right."}]  # fmt: skip
                else:
                    qa = [{"i": "Answer briefly.", "q": "Question: What moves?\nOptions:\n(A) a box\n(B) a ball",
                           "a": "Answer: (A) a box"}]  # fmt: skip
                items.append({"video": video, "QA": qa})
            items.append({"video": f"{subset}_0.mp4", "QA": qa, "start": 1.0, "end": 6.5})  # a clip of a video
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(items, indent=1))
        # a clip past the video's end (8 s) is quarantined, never clamped
        bad = root / SUBSETS["vqa_ego_qa"][0]
        bad.write_text(json.dumps([*json.loads(bad.read_text()), {"video": "vqa_ego_qa_0.mp4", "QA": qa,
                                                                  "start": 2.0, "end": 30.0}], indent=1))  # fmt: skip


# --- LLaVA-style video conversation files ------------------------------------------------------


@dataclass
class LlavaParams(STVideoParams):
    annotation: str = "annotations/vcg-plus_112K.json"
    video_root: str = "instruction_tuning/Activity_Videos"


class LlavaVideoConversations(STVideoAdapter):
    """``[{id?, video, conversations}]``: the turns as they are, ``<video>`` first."""

    Params = LlavaParams

    def list_records(self):
        rel = self.params.annotation
        seen: dict[str, int] = {}
        for i, item in enumerate(self.items(rel)):
            if item.error or not isinstance(item.data, dict):
                yield self.broken(item, f"index{i}", f"{rel} {item.locator}: expected an object")
                continue
            raw = item.data.get("id")
            sid = str(raw) if isinstance(raw, (str, int)) and not isinstance(raw, bool) and str(raw) else f"index{i}"
            seen[sid] = seen.get(sid, 0) + 1
            if seen[sid] > 1:  # ids repeat (one video, several conversations): keys stay unique and stable
                sid = f"{sid}-dup{seen[sid] - 1}"
            yield RawRecord(rel, item.locator, sid, item.data)

    def to_sample(self, record: RawRecord) -> Sample:
        item, where = record.data, record.locator
        root = self.params.video_root.rstrip("/")
        video = F.text(item, "video", where)
        video = f"{root}/{video}" if root else video
        turns = conversation_turns(item.get("conversations"), where)
        templates = [(role, literal(first_turn(text) if i == 0 else without_media(text)), {})
                     for i, (role, text) in enumerate(turns)]  # fmt: skip
        return self.video_sample(record, templates, video=video, clock=self.clock(video))

    @classmethod
    def write_llava_miniature(cls, root: Path, items: list, *, fps: float = 5, seed: int = 0) -> None:
        import json

        p = cls.Params()
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("video"), str):
                write_clip(root, f"{p.video_root}/{item['video']}", fps=fps, seconds=6 + len(item["video"]) % 5,
                           seed=seed)  # fmt: skip
        path = Path(root) / p.annotation
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(items, indent=1))


class VCGPlus(LlavaVideoConversations):
    """VCG+ 112K (``MBZUAI/VideoGPT-plus_Training_Dataset``, ``annotations/vcg-plus_112K.json``
    [V]); videos are ActivityNet's under ``instruction_tuning/Activity_Videos``. Whether the
    released turns carry ``<video>`` is not verified: either way it is moved to the front."""

    name = "st_vcg_plus"
    description = "VCG+ 112K LLaVA-style video conversations (ActivityNet videos)"

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        conv = [{"from": "human", "value": "<video>\nWhat happens in the video?"},
                {"from": "gpt", "value": "A box slides from left to right."},
                {"from": "human", "value": "What colour is the background?"},
                {"from": "gpt", "value": "A gradient."}]  # fmt: skip
        items = [
            {"id": "v_a1", "video": "v_a1.mp4", "conversations": conv},
            {"video": "v_a2.mp4", "conversations": [{"from": "human", "value": "Describe the video.\n<video>"},
                                                    {"from": "gpt", "value": "A sliding box."}]},  # no id
            {"id": "v_a1", "video": "v_a1.mp4", "conversations": conv[:2]},  # the same id again
            {"id": "v_a3", "video": "v_a3.mp4", "conversations": [{"from": "human", "value": "Why?"}]},  # no answer
        ]  # fmt: skip
        cls.write_llava_miniature(root, items, seed=seed)
