"""A source as a recipe block: a reader, a field mapping and templates, zero lines of Python.

Most sources are a known file format plus a mapping: which files, which reader, the id, the media
paths, the prompt and answer templates, the choices, the M4 metadata or the ST task. Such a
source is a YAML file in ``recipes/sources/`` (registered under its ``name``) or a recipe block
with ``adapter: declarative`` and the same keys under ``params``. See
``docs/adding_a_source.md`` for a walk-through and :class:`DeclarativeParams` for every key.

Templates read record fields as ``{field|filter}`` (:mod:`m4_pipeline.templates`) and a few
computed values, all starting with ``_``: ``_split``, ``_file`` (the annotation file), ``_id``
(the record's id), ``_slot`` (in ``image_names``), ``_images`` (one ``<image>`` per image
slot), ``_options`` ("A. ...\\nB. ..."), ``_letter`` / ``_answer`` (the right choice), and for ST
sources ``_span`` (the moment as a span), ``_start`` / ``_end`` (its two times).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..coords import FrameRange, Ops, Span, Time, seconds_range
from ..errors import BuildError, SourceError
from ..media.sampling import FpsSampler, STRangeSampler, UniformSampler
from ..readers import load_json
from ..sample import Media, Sample
from ..templates import LETTERS, evaluate, fields_of, is_single_field, lookup, render
from .base import Adapter, RawRecord, SourceParams
from .fields import check_integer, check_text
from .miniature import write_declared_miniature

ST_FRAMES = 100


@dataclass
class DeclarativeParams(SourceParams):
    family: str = "m4"  # m4 | st
    description: str = ""
    # --- the listing
    reader: str = "jsonl"  # json | jsonl | json_dict | csv | tsv | parquet | lines | xml | zip_members | tar_members
    reader_options: dict = field(default_factory=dict)  # e.g. {field: data}, {columns: [...]}
    files: list[str] = field(default_factory=lambda: ["{split}.jsonl"])  # may use {split}; globs allowed
    splits: list[str] = field(default_factory=lambda: ["train"])
    id: str = ""  # id expression; "" = file and position
    maps: dict = field(default_factory=dict)  # name -> JSON side file {key: value}, used as {field|map:name}
    by_split: dict = field(default_factory=dict)  # split -> overrides of the keys below
    # --- media
    images: list[str] = field(default_factory=list)  # one path expression (or embedded-image field) per slot
    image_list: str = ""  # or: a field holding a list of image paths (or embedded images)
    image_names: list[str] = field(default_factory=list)  # record paths of embedded images (per slot, or one
    # expression for all, with {_slot}); default: the HF image struct's own ``path``
    image_prefix: str = ""  # prefix of the M4 record's image paths (the release's zip folder)
    pad_to_square: bool = False
    video: str = ""  # path expression of a video file or frame folder
    frames: int = 0  # M4: frames to sample; ST samples always take 100
    frame_strategy: str = "uniform"  # uniform | fps (every avg_fps/video_fps-th frame, capped at `frames`)
    video_fps: float = 1.0
    folder_fps: float = 1.0  # frame folders: their extraction rate (not recorded in the folder)
    frames_as: str = "images"  # M4: images (one <image> per frame) | video (one slot, the record's "video")
    frame_path: str = "{_video_id}/frame_{_frame}.jpg"  # M4 released path of a frame image
    # --- text
    human: Any = ""  # template, @library/name or a list of templates (chosen by the sample key)
    gpt: Any = ""
    conversation: str = ""  # or: a field holding the turns, [{from, value}] or [{role, content}]
    choices: list[str] = field(default_factory=list)  # choice expressions; one "{field}" naming a list
    answer: str = ""  # expression of the right choice
    answer_kind: str = "text"  # text | index (0-based) | letter
    question_type: str = "open-ended"
    task_instruction: str = ""
    # --- ST time
    time_unit: str = ""  # unit of start/end and clip_start/clip_end: seconds | frames ("" when there are none)
    start: str = ""  # expression of the moment's start
    end: str = ""  # expression of the moment's end ("" for a point in time)
    clip_start: str = ""  # expressions of the clip (meta.split) the sample covers; "" = whole video
    clip_end: str = ""
    st_kind: str = ""  # the ST record's optional "type"
    miniature: dict = field(default_factory=dict)  # records per file (and side files) of the miniature

    def __post_init__(self):
        """A misspelt choice is a configuration fault, found before any record is built."""
        for name, valid in _CHOICES.items():
            value = getattr(self, name)
            if value not in valid:
                raise BuildError(f"{name}: {value!r} is not one of {', '.join(repr(v) for v in valid)}")


_CHOICES = {
    "family": ("m4", "st"),
    "frame_strategy": ("uniform", "fps"),
    "frames_as": ("images", "video"),
    "answer_kind": ("text", "index", "letter"),
    "time_unit": ("", "seconds", "frames"),
    "question_type": ("open-ended", "multi-choice"),
}


RESERVED = {"_split", "_images", "_options", "_letter", "_answer", "_span", "_start", "_end", "_video_id", "_frame",
            "_index", "_key", "_id", "_slot", "_file"}  # fmt: skip


class Declarative(Adapter):
    name = "declarative"
    Params = DeclarativeParams
    description = "a source described entirely in the recipe: reader, field mapping, templates"
    declared: ClassVar[dict] = {}  # the YAML a declared source came from
    abstract = True  # the generic adapter; each declared source is a subclass with abstract False

    def _p(self, split: str) -> DeclarativeParams:
        over = (self.params.by_split or {}).get(split)
        return dataclasses.replace(self.params, **over) if over else self.params

    # --- listing ----------------------------------------------------------------------------------
    @property
    def reader(self) -> str:  # type: ignore[override]
        return self.params.reader

    @property
    def reader_options(self) -> dict:  # type: ignore[override]
        return self.params.reader_options

    def annotation_files(self) -> list[str]:
        out = []
        for split in self.params.splits:
            for pattern in self._p(split).files:
                rel = pattern.replace("{split}", split)
                out += self.src.glob(rel) if any(c in rel for c in "*?[") else [rel]
        return out

    def _split_of(self, rel: str) -> str:
        for split in self.params.splits:
            for pattern in self._p(split).files:
                if (
                    pattern.replace("{split}", split) == rel
                    or "{split}" not in pattern
                    and len(self.params.splits) == 1
                ):
                    return split
                if any(c in pattern for c in "*?[") and rel in self.src.glob(pattern.replace("{split}", split)):
                    return split
        return self.params.splits[0]

    def source_id(self, item) -> str:
        p = self._p(self._split_of(item.file))
        if not p.id:
            return super().source_id(item)
        return render(p.id, self._context(item.data, self._split_of(item.file), item.file), item.locator)

    # --- building ---------------------------------------------------------------------------------
    def _maps(self) -> dict[str, dict]:
        return self.cached(("maps",), lambda: {k: load_json(self.src, v) for k, v in self.params.maps.items()})

    def _context(self, data: Any, split: str, file: str = "") -> dict:
        if not isinstance(data, dict):
            raise SourceError(f"expected an object, got {type(data).__name__}")
        bad = RESERVED & set(data)
        ctx = {k: v for k, v in data.items() if k not in bad}
        ctx["_split"] = split
        ctx["_file"] = file  # the annotation file (relative to the source root)
        ctx["_maps"] = self._maps() if self.params.maps else {}
        return ctx

    def to_sample(self, record: RawRecord) -> Sample:
        split = self._split_of(record.source_file)
        p = self._p(split)
        ctx = self._context(record.data, split, record.source_file)
        ctx["_id"] = record.source_id
        where = record.locator
        notes: dict[str, str] = {}
        ops = Ops()
        media, paths = self._images(p, ctx, where)
        video, clip = None, None
        if p.video:
            video = render(p.video, ctx, where)
            info = self.video_info(video, folder_fps=p.folder_fps)
            ctx["_video_id"] = video.rsplit("/", 1)[-1].rsplit(".", 1)[0]
            if p.family == "st":
                ops.add(info.provenance())
                clip = self._st_clip(p, ctx, info, ops, where)
                whole = clip or FrameRange(0, info.num_frames - 1)
                indices = STRangeSampler(whole.start, whole.end, ST_FRAMES).indices(info)
                media += self.frames(video, indices, one_slot=True, folder_fps=p.folder_fps)
            else:
                sampler = (UniformSampler(p.frames or 8) if p.frame_strategy == "uniform"
                           else FpsSampler(video_fps=p.video_fps, frames_upbound=p.frames))  # fmt: skip
                one_slot = p.frames_as == "video"
                frames = self.frames(video, sampler.indices(info), one_slot=one_slot, folder_fps=p.folder_fps)
                media += frames
                if not one_slot:
                    rels = [render(p.frame_path, {**ctx, "_frame": f"{m.frame_index:06d}"}, where) for m in frames]
                    paths += [f"{p.image_prefix}/{r}" if p.image_prefix else r for r in rels]
        elif p.time_unit:
            raise SourceError(f"{where}: an ST moment needs a video")
        ctx["_images"] = "<image>" * len({m.slot for m in media}) if p.family == "m4" else ""
        choice_list = self._choices(p, ctx, where)
        templates = self._templates(p, ctx, record, notes, where)
        if p.family == "st":
            return self.st_sample(record, [(role, t, ctx) for role, t in templates], video=video,
                                  image=None if video else (paths[0] if paths else None), split=clip, media=media,
                                  kind=p.st_kind or None, templates=notes, ops=ops.items)  # fmt: skip
        turns = [(role, check_text(render(t, ctx, where), f"{where}: {role} turn")) for role, t in templates]
        fields = {"question_type": p.question_type, "choice_list": choice_list, "task_instruction": p.task_instruction,
                  "split": split, "templates": notes, "ops": ops.items, "media": media}  # fmt: skip
        if video is not None and p.frames_as == "video":
            return self.m4_sample(record, turns, video=video, **fields)
        return self.m4_sample(record, turns, images=paths, **fields)

    def _eval(self, expr: str, ctx: dict, where: str) -> Any:
        single = is_single_field(expr)
        return evaluate(single, ctx, where) if single is not None else render(expr, ctx, where)

    def _images(self, p: DeclarativeParams, ctx: dict, where: str) -> tuple[list[Media], list[str]]:
        """Images named by path, or embedded (an HF image struct ``{bytes, path}`` or a parquet blob
        reference, whose record path comes from ``image_names`` or the struct's ``path``)."""
        values = []
        for e in p.images:
            single = is_single_field(e)
            value = evaluate(single, ctx, where) if single is not None else None
            values.append(value if isinstance(value, dict) else render(e, ctx, where))
        if p.image_list:
            value = self._eval(p.image_list, ctx, where)
            if not isinstance(value, list) or not value:
                raise SourceError(f"{where}: {p.image_list} must be a non-empty list of image paths")
            values += [v if isinstance(v, dict) else check_text(v, f"{where}: {p.image_list}") for v in value]
        if len(p.image_names) not in (0, 1, len(values)):
            raise SourceError(f"{where}: {len(p.image_names)} image_names for {len(values)} images")
        media, paths = [], []
        for slot, value in enumerate(values):
            what, at = f"{where}: image {slot}", 0 if p.family == "st" else slot
            rel = value if isinstance(value, str) else value.get("path")
            data = None if isinstance(value, str) else self.embedded_bytes(value, what)
            if data is None:
                rel = check_text(rel, f"{what}: path")
                media.append(self.image(rel, at, pad_to_square=p.pad_to_square))
            else:
                media.append(self.image_from_bytes(data, what, at, pad_to_square=p.pad_to_square))
            if p.image_names:
                rel = render(p.image_names[slot if len(p.image_names) > 1 else 0], {**ctx, "_slot": slot}, where)
            if not isinstance(rel, str) or not rel:
                raise SourceError(f"{what}: an embedded image without a path: declare image_names")
            paths.append(f"{p.image_prefix}/{rel}" if p.image_prefix else rel)
        return media, paths

    def _choices(self, p: DeclarativeParams, ctx: dict, where: str) -> list | None:
        if not p.choices:
            return None
        if len(p.choices) == 1 and is_single_field(p.choices[0]):
            options = self._eval(p.choices[0], ctx, where)
            if not isinstance(options, list) or not options:
                raise SourceError(f"{where}: {p.choices[0]} must be a non-empty list of choices")
        else:
            options = [render(c, ctx, where) for c in p.choices]
        options = [check_text(str(o) if isinstance(o, (int, float)) else o, f"{where}: choice {i}")
                   for i, o in enumerate(options)]  # fmt: skip
        ctx["_options"] = "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(options))
        if p.answer:
            raw = str(self._eval(p.answer, ctx, where)).strip()
            if p.answer_kind == "index":
                idx = int(raw) if raw.lstrip("-").isdigit() else -1
            elif p.answer_kind == "letter":
                idx = LETTERS.find(raw.upper()) if len(raw) == 1 else -1
            else:
                idx = options.index(raw) if raw in options else -1
            if not 0 <= idx < len(options):
                raise SourceError(f"{where}: answer {raw!r} is not one of the {len(options)} choices")
            ctx["_letter"], ctx["_answer"] = LETTERS[idx], options[idx]
        return options

    def _st_clip(self, p: DeclarativeParams, ctx: dict, info, ops: Ops, where: str) -> FrameRange | None:
        """The clip (``meta.split``) the sample covers, or None for the whole video; with a
        moment, ``_start`` / ``_end`` / ``_span`` in the context, relative to the clip."""
        clip = None
        if p.clip_start:
            clip = FrameRange(*self._frames_of(p, ctx, p.clip_start, p.clip_end, info, ops, f"{where}: clip"))
        if p.time_unit and p.start:  # a clip may come without a moment (captions of a clip, QA on a clip)
            s, e = self._frames_of(p, ctx, p.start, p.end or p.start, info, ops, f"{where}: moment")
            whole = clip or FrameRange(0, info.num_frames - 1)
            ctx["_start"], ctx["_end"] = Time(whole.time(s, "moment start")), Time(whole.time(e, "moment end"))
            ctx["_span"] = Span(ctx["_start"].t, ctx["_end"].t)
        return clip

    def _frames_of(self, p, ctx, start_expr, end_expr, info, ops, what) -> tuple[int, int]:
        s, e = self._eval(start_expr, ctx, what), self._eval(end_expr, ctx, what)
        if p.time_unit not in ("frames", "seconds"):
            raise SourceError(f"{what}: time_unit {p.time_unit!r} must be frames or seconds for a clip or a moment")
        if p.time_unit == "frames":
            s, e = check_integer(s, f"{what} start"), check_integer(e, f"{what} end")
            if not 0 <= s <= e < info.num_frames:
                raise SourceError(f"{what}: frames [{s}, {e}] lie outside the video's {info.num_frames} frames")
            return s, e
        return seconds_range(s, e, info.fps, info.num_frames, what=what, ops=ops)

    def _templates(self, p: DeclarativeParams, ctx: dict, record: RawRecord, notes: dict, where: str):
        """[(role, template)]: the two templates, or the turns of a conversation field as they are."""
        if not p.conversation:
            return [("human", self.template(notes, p.human, record, "human")),
                    ("gpt", self.template(notes, p.gpt, record, "gpt"))]  # fmt: skip
        turns = self._eval(p.conversation, ctx, where)
        if not isinstance(turns, list) or not turns:
            raise SourceError(f"{where}: {p.conversation} must be a non-empty list of turns")
        out = []
        for i, t in enumerate(turns):
            if not isinstance(t, dict):
                raise SourceError(f"{where}: turn {i} is not an object")
            role = t.get("from", t.get("role"))
            role = {"user": "human", "assistant": "gpt"}.get(role, role)
            text = check_text(t.get("value", t.get("content")), f"{where}: turn {i}")
            out.append((role, text.replace("{", "{{").replace("}", "}}")))  # the text is not a template
        return out

    def preflight(self, sample_items: int = 20) -> None:
        """Every field the mapping reads must appear in the first records of each split's files:
        a misspelt ``{field}`` stops the build here, naming it and the fields the reader sees."""
        from ..readers import get_reader

        reader = get_reader(self.params.reader, **self.params.reader_options)
        for split in self.params.splits:
            p = self._p(split)
            seen: set[str] = set()
            checked = 0
            for pattern in p.files:
                rel = pattern.replace("{split}", split)
                for f in self.src.glob(rel) if any(c in rel for c in "*?[") else [rel]:
                    for item in reader.read_file(self.src, f):
                        if isinstance(item.data, dict):
                            seen |= set(item.data)
                            checked += 1
                        if checked >= sample_items:
                            break
            missing = sorted(template_fields(p) - seen - {"_maps"})
            if checked and missing:
                raise BuildError(f"{self.source_name}: the mapping reads field(s) {missing} that the {p.reader} reader "
                                 f"does not see in split {split!r} (its fields: {sorted(seen)})")  # fmt: skip

    @classmethod
    def write_miniature(cls, root, *, seed: int = 0) -> None:
        write_declared_miniature(cls, root, seed=seed)


def template_fields(p: DeclarativeParams) -> set[str]:
    """Every record field the mapping reads (checked against the reader's first records)."""
    exprs = [p.id, p.video, p.image_list, p.conversation, p.answer, p.start, p.end, p.clip_start, p.clip_end,
             *p.images, *p.image_names, *p.choices]  # fmt: skip
    for ref in (p.human, p.gpt):
        value = lookup(ref) if isinstance(ref, str) else ref
        exprs += [value] if isinstance(value, str) else list(value or [])
    out: set[str] = set()
    for e in exprs:
        if e:
            out |= fields_of(e)
    return {f for f in out if not f.startswith("_")}
