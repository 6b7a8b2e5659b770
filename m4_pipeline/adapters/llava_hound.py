"""LLaVA-Hound / ShareGPTVideo SFT video data: QA and detailed captions over frame folders.

Layout (HF ``ShareGPTVideo/train_video_and_instruction``) [V HF tree; LLaVA-Hound-DPO repo]::

    video_instruction/train/sft/video_240k_caption_15k.jsonl
        {id, video, conversations: [{from, value}]}: 240K QA lines, then 15K caption lines
    train_300k/<video>/c01_0001.jpeg ...          one folder of frames per video (extracted), or
    train_300k/chunk_{0..15}.tar.gz               the same folders as published (``./<video>/...``)

Frames are the folder's files sorted by name and sampled ``linspace(0, n-1, N)`` (int), as
LLaVA-Hound's ``load_frames`` / ``sample_frames`` and LLaVA-NeXT's frame-folder loader do [V];
``N`` (``frames``) is 10 as LLaVA-NeXT trains. The folders' extraction rate is not recorded [I:
LLaVA-Hound's own ``decode2frame`` uses 2 fps], so timestamps are ``index / folder_fps``.

A tar.gz has no random access: with ``frames_from: archives`` the listing streams each chunk's
headers once (member data skipped) to find every video's frames; records are listed in archive
order, and the adapter keeps one forward cursor per chunk, so a work unit costs one partial pass
over its chunk (``readers.TarStream``). Extracted folders (the default) are read at random.

Which lines are QA and which captions: the file is 240K QA lines then 15K caption lines [V: its
name; V3: a third party takes ``head -n 240000`` as QA]. ``split_rule: lines`` puts the boundary
after ``qa_lines`` of ``total_lines``; a file of another length (a new revision, a miniature) is
cut in the same proportion, with a warning. ``split_rule: prompts`` calls a line a caption when
its question is one of ``caption_prompts`` (a template list the recipe supplies; LLaVA-Hound's
detailed-caption prompts are a candidate [I], not copied here).
The record is the release's video form, ``{id, video: "<prefix>/<video>", conversations}`` with
one ``<image>`` (LLaVA-Hound's ``<video>`` token becomes ``<image>``; a line without one gets it
prepended) and no ``metadata``: the dataset (QA or caption) is the recipe source's name.
"""

from __future__ import annotations

import io
import json
import logging
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import BuildError, MediaError
from ..media.images import normalize_image
from ..media.sampling import UniformSampler, VideoInfo
from ..media.video import FRAME_EXTENSIONS
from ..readers import TarStream, get_reader, iter_tar_members, normalize_member
from ..sample import Media, Provenance, Sample, Turn
from ..synthetic import synthetic_image
from ..templates import lookup
from . import fields as F
from .base import Adapter, RawRecord, SourceError, SourceParams

log = logging.getLogger(__name__)
PARTS = ("qa", "caption", "all")


@dataclass
class Params(SourceParams):
    annotation: str = "video_instruction/train/sft/video_240k_caption_15k.jsonl"
    part: str = "all"  # qa | caption | all
    split_rule: str = "lines"  # lines (the first qa_lines of total_lines are QA) | prompts (caption prompts)
    qa_lines: int = 240000  # [V3]
    total_lines: int = 255000  # the published file's length [V its name: 240k QA + 15k captions]
    caption_prompts: str = ""  # split_rule prompts: a template (list) of the caption questions
    frames_from: str = "folders"  # folders (extracted) | archives (the chunk_*.tar.gz, streamed)
    frames_dir: str = "train_300k"
    archives: str = "train_300k/chunk_*.tar.gz"
    frames: int = 10  # LLaVA-NeXT's N for LLaVA-Hound frame folders [V]
    folder_fps: float = 2.0  # extraction rate of the frames [I]; only the timestamps use it
    video_prefix: str = "shareVideoGPTV/frames/all_frames"  # the release's video path [I]

    def __post_init__(self):
        if self.part not in PARTS or self.split_rule not in ("lines", "prompts"):
            raise BuildError(f"llava_hound: part {self.part!r} must be one of {PARTS}, split_rule {self.split_rule!r} "
                             "one of lines, prompts")  # fmt: skip
        if self.frames_from not in ("folders", "archives") or self.frames < 1:
            raise BuildError("llava_hound: frames_from must be folders or archives, frames at least 1")
        if self.split_rule == "prompts" and not self.caption_prompts:
            raise BuildError("llava_hound: split_rule prompts needs caption_prompts (a template or @group/name)")
        if not 0 <= self.qa_lines <= self.total_lines or self.total_lines < 1:
            raise BuildError("llava_hound: qa_lines must lie in [0, total_lines]")


def _question(turns) -> str:
    first = turns[0] if isinstance(turns, list) and turns and isinstance(turns[0], dict) else {}
    value = first.get("value") if isinstance(first.get("value"), str) else ""
    return value.replace("<video>", "").replace("<image>", "").strip()


class LLaVAHound(Adapter):
    name = "llava_hound"
    family = "m4"
    Params = Params
    description = "LLaVA-Hound / ShareGPTVideo SFT QA + captions over train_300k frame folders or tar.gz chunks"

    def _qa_boundary(self, n_lines: int) -> int:
        p = self.params
        if n_lines == p.total_lines:
            return p.qa_lines
        boundary = round(n_lines * p.qa_lines / p.total_lines)
        log.warning("%s: %s has %d lines, not %d: QA taken as its first %d (the published proportion)",
                    self.source_name, p.annotation, n_lines, p.total_lines, boundary)  # fmt: skip
        return boundary

    def _is_caption(self, data) -> bool:
        prompts = lookup(self.params.caption_prompts)
        prompts = {prompts} if isinstance(prompts, str) else set(prompts)
        return _question(data.get("conversations") if isinstance(data, dict) else None) in prompts

    def list_records(self) -> Iterator[RawRecord]:
        p = self.params
        items = list(get_reader("jsonl").read_file(self.src, p.annotation))
        n_lines = max((int(i.locator.split()[-1]) for i in items), default=0)
        boundary = self._qa_boundary(n_lines) if p.split_rule == "lines" else 0
        chosen = []
        for item in items:
            line_no = int(item.locator.split()[-1])
            if p.split_rule == "lines":
                kind = "qa" if line_no <= boundary else "caption"
            else:
                kind = "caption" if item.error is None and self._is_caption(item.data) else "qa"
            if p.part != "all" and kind != p.part:
                continue
            sid = ""
            if isinstance(item.data, dict) and isinstance(item.data.get("id"), (str, int)):
                sid = str(item.data["id"])
            data = {"line": item.data, "kind": kind} if item.error is None else None
            chosen.append(RawRecord(item.file, item.locator, f"{sid or 'line'}-L{line_no}", data, item.error))
        if p.frames_from == "archives":
            chosen = self._by_archive(chosen)
        yield from chosen

    def _by_archive(self, records: list[RawRecord]) -> list[RawRecord]:
        """Each video's chunk and chosen frame members, from one header pass per chunk; records in
        archive order (a record whose video is in no chunk keeps its place at the end)."""
        chunks = self.src.glob(self.params.archives)
        if not chunks:
            raise BuildError(f"{self.source_name}: no archive matches {self.params.archives} under {self.root}")
        folders: dict[str, tuple[int, str, list[str]]] = {}  # folder -> (order, chunk, member names)
        for rel in chunks:
            for name, _ in iter_tar_members(self.src, rel, read=lambda n: False):
                folder = str(PurePosixPath(normalize_member(name)).parent)
                if PurePosixPath(name).suffix.lower() in FRAME_EXTENSIONS:
                    folders.setdefault(folder, (len(folders), rel, []))[2].append(name)
        out = []
        for rec in records:
            video = rec.data["line"].get("video") if rec.data and isinstance(rec.data["line"], dict) else None
            found = folders.get(str(video).strip("/")) if isinstance(video, str) else None
            if found:
                order, chunk, names = found
                rec.data["archive"] = {"chunk": chunk, "order": order, "members": self._chosen(sorted(names))}
            out.append(rec)
        inf = float("inf")
        return sorted(out, key=lambda r: r.data["archive"]["order"] if r.data and "archive" in r.data else inf)

    def _chosen(self, names: list[str]) -> list[tuple[int, str]]:
        info = VideoInfo(len(names), self.params.folder_fps, 0, 0)
        return [(i, names[i]) for i in UniformSampler(self.params.frames).indices(info)]

    # --- building -------------------------------------------------------------------------------
    def to_sample(self, record: RawRecord) -> Sample:
        p, where = self.params, record.locator
        line = F.mapping(record.data, "line", where)
        video = F.text(line, "video", where).strip("/")
        turns = [(F.text(t, "from", f"{where}: turn {i}"), F.text(t, "value", f"{where}: turn {i}"))
                 for i, t in enumerate(F.listing(line, "conversations", where))]  # fmt: skip
        turns = [({"user": "human", "assistant": "gpt"}.get(r, r), v.replace("<video>", "<image>")) for r, v in turns]
        ops = []
        count = sum(v.count("<image>") for _, v in turns)
        if count > 1:
            raise SourceError(f"{where}: {count} video tokens for one video", reason="validation")
        if count == 0:
            turns[0] = (turns[0][0], "<image>\n" + turns[0][1])
            ops.append("prepend_image_token")
        if p.frames_from == "archives":
            media = self._archive_frames(record, video, where)
        elif self.media_mode != "frames":  # a reference to the frame folder, or one clip of the chosen frames
            rel = f"{p.frames_dir}/{video}"
            indices = UniformSampler(p.frames).indices(self.video_info(rel, folder_fps=p.folder_fps))
            media = self.frames(rel, indices, one_slot=True, folder_fps=p.folder_fps)
        else:
            media = self.cached(("frames", video), lambda: self._folder_frames(video))
        # the release's video record: {id, video, conversations}, no metadata (the dataset, QA or
        # caption, is the recipe source's name)
        sid = line.get("id") if isinstance(line.get("id"), (str, int)) else record.source_id
        out = Sample(key="", family="m4", conversations=[Turn(r, v) for r, v in turns], media=list(media),
                     record={"id": sid, "video": f"{p.video_prefix}/{video}"},
                     provenance=Provenance("", "", "", ops=ops) if ops else None)  # fmt: skip
        out.conv_pos = 2
        return out

    def _frame(self, index: int, data: bytes, what: str) -> Media:
        img = normalize_image(data, what)
        time = round(index / self.params.folder_fps, 6)
        return Media("frame", 0, img.data, img.ext, frame_index=index, timestamp=time, size=list(img.size), ops=img.ops)

    def _folder_frames(self, video: str) -> tuple[Media, ...]:
        rel = f"{self.params.frames_dir}/{video}"
        folder = self.src.folder(rel, "frame folder")
        names = sorted(f.name for f in folder.iterdir()
                       if f.suffix.lower() in FRAME_EXTENSIONS and not f.is_symlink() and f.is_file())  # fmt: skip
        if not names:
            raise MediaError(f"frame folder {rel} holds no frames", reason="missing_media")
        return tuple(self._frame(i, self.src.read_bytes(f"{rel}/{name}", "frame"), f"{rel}/{name}")
                     for i, name in self._chosen(names))  # fmt: skip

    def _archive_frames(self, record: RawRecord, video: str, where: str) -> tuple[Media, ...]:
        found = record.data.get("archive")
        if not isinstance(found, dict):
            raise MediaError(f"{where}: video {video} is in no archive matching {self.params.archives}",
                             reason="missing_media")  # fmt: skip
        chunk, members = found["chunk"], [tuple(m) for m in found["members"]]
        return self.cached(("frames", video), lambda: self._read_members(chunk, members))

    def _read_members(self, chunk: str, members: list[tuple[int, str]]) -> tuple[Media, ...]:
        stream = self._streams.setdefault(chunk, TarStream(self.src, chunk))
        got = stream.fetch([normalize_member(name) for _, name in members])
        return tuple(self._frame(i, got[normalize_member(name)], f"{chunk}:{name}") for i, name in members)

    @property
    def _streams(self) -> dict[str, TarStream]:
        if not hasattr(self, "_stream_map"):
            self._stream_map: dict[str, TarStream] = {}
        return self._stream_map

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        _write_miniature(Path(root), seed=seed)


# --- the miniature ---------------------------------------------------------------------------------

VIDEOS = {"v_ZaQ3tL0aQ8w": 23, "ssv2_1021": 14, "webvid_7731240": 31, "v_k0Lp2mQ9xYc": 9}  # frames per folder
QUESTIONS = [("What is the person holding?", "A red ball."), ("Where does the scene take place?", "In a kitchen."),
             ("What happens at the end?", "The ball rolls away."), ("How many people appear?", "Two people."),
             ("What colour is the cup?", "The cup is blue."), ("Is it day or night?", "It is daytime."),
             ("What is on the table?", "A bowl and a cup."),
             ("Does the camera move?", "It pans to the left.")]  # fmt: skip


def _write_miniature(root: Path, *, seed: int = 0) -> None:
    """34 lines in the published proportion (32 QA lines, several per video and not grouped, then
    2 caption lines), one line on a video that has no frames, one without a ``<video>`` token;
    frame folders ``train_300k/<video>/c01_%04d.jpeg`` of different lengths, and the same folders
    as two ``chunk_N.tar.gz`` archives with ``./`` member names."""
    vids = list(VIDEOS)
    lines = []
    for i in range(32):
        vid = "v_missing00" if i == 9 else vids[i % len(vids)]  # lines of one video are not adjacent
        q, a = QUESTIONS[i // len(vids)]
        human = f"<video>\n{q}" if i != 4 else q  # one line without the token
        lines.append({"id": f"{vid}_{i}", "video": vid, "conversations": [
            {"from": "human", "value": human}, {"from": "gpt", "value": a}]})  # fmt: skip
    for vid in vids[:2]:
        lines.append(
            {
                "id": vid,
                "video": vid,
                "conversations": [
                    {"from": "human", "value": "<video>\nDescribe every scene of the video in detail."},
                    {"from": "gpt", "value": "The video opens on a table; a ball rolls from left to right and stops."},
                ],
            }
        )
    ann = root / Params.annotation
    ann.parent.mkdir(parents=True, exist_ok=True)
    ann.write_text("".join(json.dumps(line) + "\n" for line in lines))
    members: dict[str, list[tuple[str, bytes]]] = {}
    for v_i, (vid, n) in enumerate(VIDEOS.items()):
        folder = root / "train_300k" / vid
        folder.mkdir(parents=True, exist_ok=True)
        for f in range(n):
            buf = io.BytesIO()
            synthetic_image(seed + 300 * v_i + f, (64, 48)).save(buf, "JPEG", quality=85)
            (folder / f"c01_{f + 1:04d}.jpeg").write_bytes(buf.getvalue())
            members.setdefault(f"chunk_{v_i % 2}.tar.gz", []).append((f"./{vid}/c01_{f + 1:04d}.jpeg", buf.getvalue()))
    for name, items in members.items():
        with tarfile.open(root / "train_300k" / name, "w:gz") as tf:
            for member, data in items:
                info = tarfile.TarInfo(member)
                info.size, info.mtime = len(data), 0
                tf.addfile(info, io.BytesIO(data))
