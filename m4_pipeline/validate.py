"""Validation of samples against the interleaved template.

Every problem names the sample (its key) and the field. ``check_sample`` raises the first
batch of problems as one :class:`ValidationError`; ``validate_sample`` returns them all.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from .coords import COORD_TOKEN, PLACEHOLDER_OF, ST_VARIABLES, io_for_role
from .errors import SourceError
from .sample import MEDIA_KINDS, ROLES, Sample

QUESTION_TYPES = ("open-ended", "multi-choice")
ST_FRAMES = 100


@dataclass(frozen=True)
class Problem:
    key: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.key or '<no key>'}: {self.field}: {self.message}"


class ValidationError(SourceError):
    """A sample that breaks the template; quarantined with reason ``validation``."""

    default_reason = "validation"

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


def check_sample(sample: Sample, *, with_media: bool = True) -> None:
    problems = validate_sample(sample, with_media=with_media)
    if problems:
        raise ValidationError(problems)


def validate_sample(sample: Sample, *, with_media: bool = True) -> list[Problem]:
    """Every problem of the sample. A sample must carry the media its placeholders and its
    record promise; ``with_media=False`` checks a record before its media are loaded (the
    release adapters check a record as released first, so its own defects are named)."""
    out: list[Problem] = []

    def bad(field: str, message: str) -> None:
        out.append(Problem(sample.key, field, message))

    _check_turns(sample, bad)
    _check_placeholders(sample, bad, with_media)
    _check_media(sample, bad)
    if sample.family == "m4":
        _check_m4_metadata(sample, bad)
    else:
        _check_st(sample, bad, with_media)
    return out


def _check_turns(sample: Sample, bad) -> None:
    turns = sample.conversations
    if not turns:
        bad("conversations", "no turns")
        return
    for i, turn in enumerate(turns):
        where = f"conversations[{i}]"
        if turn.role not in ROLES:
            bad(f"{where}.from", f"unknown role {turn.role!r}, expected one of {list(ROLES)}")
        expected = ROLES[i % 2]
        if turn.role in ROLES and turn.role != expected:
            what = "the first turn must be human" if i == 0 else "roles must alternate human/gpt"
            bad(f"{where}.from", f"{what}, got {turn.role!r}")
        if not isinstance(turn.value, str) or not turn.value.strip():
            bad(f"{where}.value", "empty turn")


def _record_paths(sample: Sample) -> tuple[str, int] | None:
    """(field, number of paths) named by the record, or None if it names none."""
    for field in ("image", "video"):
        value = sample.record.get(field)
        if value is None:
            continue
        return field, (len(value) if isinstance(value, list) else 1)
    return None


def _check_placeholders(sample: Sample, bad, with_media: bool) -> None:
    pattern = PLACEHOLDER_OF[sample.family]
    count = 0
    for i, t in enumerate(sample.conversations):
        found = pattern.findall(t.value) if isinstance(t.value, str) else []
        count += len(found)
        if found and t.role != "human":  # the released loaders take media placeholders from human turns
            bad(f"conversations[{i}].value", f"{found[0]} in a {t.role} turn: placeholders belong in human turns")
    paths = _record_paths(sample)
    if paths is not None:
        field, n = paths  # a video record names one path: one placeholder for the whole video
        if n != count:
            bad(field, f"{count} placeholder(s) in the conversation but {n} path(s) in '{field}'")
    elif count:
        bad("image", f"{count} placeholder(s) in the conversation but the record names no media")
    if (with_media or sample.media) and sample.num_slots != count:
        bad("media", f"{count} placeholder(s) in the conversation but {sample.num_slots} media slot(s)")
    if sample.family == "st" and count == 0:
        bad("conversations", "an ST-Align sample must contain <image> or <video>")


def _check_media(sample: Sample, bad) -> None:
    kinds_by_slot: dict[int, set[str]] = defaultdict(set)
    last = -1
    for i, m in enumerate(sample.media):
        where = f"media[{i}]"
        if m.kind not in MEDIA_KINDS:
            bad(f"{where}.kind", f"unknown media kind {m.kind!r}, expected one of {list(MEDIA_KINDS)}")
        if m.slot < last or m.slot > last + 1:
            bad(f"{where}.slot", f"slots must run 0,1,2,... in order, got {m.slot} after {last}")
        last = max(last, m.slot)
        kinds_by_slot[m.slot].add(m.kind)
        if m.kind == "frame" and (m.frame_index is None or m.timestamp is None):
            bad(where, "a video frame needs its source frame_index and timestamp")
        if m.kind in ("clip", "video") and (not m.frames or len(m.times()) != len(m.frames)):
            bad(where, f"a {m.kind} needs its source frames and one timestamp each")
        if m.kind == "clip" and not m.data:
            bad(where, "a clip needs its bytes")
        if m.kind == "video" and not (isinstance(m.ref, dict) and {"root", "path", "size", "sha256"} <= set(m.ref)):
            bad(where, "a video reference needs ref {root, path, size, sha256}")
        if m.kind == "view" and (m.pose is None or m.intrinsics is None):
            bad(where, "a 3D view needs its camera pose and intrinsics")
    for slot, kinds in kinds_by_slot.items():
        if len(kinds) > 1:
            bad("media", f"slot {slot} mixes media kinds {sorted(kinds)}")


def _check_m4_metadata(sample: Sample, bad) -> None:
    meta = sample.record.get("metadata")
    if meta is None:
        return
    if not isinstance(meta, dict):
        bad("metadata", "must be an object")
        return
    qtype = meta.get("question_type")
    if qtype is not None and qtype not in QUESTION_TYPES:
        bad("metadata.question_type", f"{qtype!r} is not one of {list(QUESTION_TYPES)}")
    choices = sample.record.get("choice_list")
    if qtype == "multi-choice" and choices is not None and not (isinstance(choices, list) and choices):
        bad("choice_list", "a multi-choice sample needs a non-empty choice_list (or null)")


def _check_st(sample: Sample, bad, with_media: bool) -> None:
    video = sample.record.get("video")
    if isinstance(video, str) and "shareVideoGPTV" in video:
        bad("video", "ST samples must not use 'shareVideoGPTV' paths (the loader reads those as 10 frames)")
    if video is not None:
        frames = [i for m in sample.media for i in m.source_frames()]
        if (with_media or sample.media) and len(frames) != ST_FRAMES:
            bad("media", f"an ST-Align video needs exactly {ST_FRAMES} frames, got {len(frames)}")
        split = (sample.record.get("meta") or {}).get("split")
        if split is not None:
            if not (isinstance(split, list) and len(split) == 2 and split[0] <= split[1]):
                bad("meta.split", f"must be [start_frame, end_frame] with start <= end, got {split!r}")
            elif any(not split[0] <= f <= split[1] for f in frames):
                bad("media", f"frame indices fall outside meta.split {split}")
    variables = sample.record.get("variables")
    if not isinstance(variables, dict):
        bad("variables", "missing: an ST-Align sample needs the six location lists")
        return
    values: dict[tuple[str, str], list] = {}
    for axis_io, name in ST_VARIABLES.items():
        vals = variables.get(name)
        if not isinstance(vals, list):
            bad(f"variables.{name}", "missing or not a list")
            vals = []
        for j, v in enumerate(vals):
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0.0 <= v <= 1.0:
                bad(f"variables.{name}[{j}]", f"must be a number in [0, 1], got {v!r}")
        values[axis_io] = vals
    _check_st_tokens(sample, values, bad)


def _check_st_tokens(sample: Sample, values, bad) -> None:
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for ti, turn in enumerate(sample.conversations):
        text = turn.value if isinstance(turn.value, str) else ""
        tokens = []  # (axis, io, index into its list, start, end)
        for m in COORD_TOKEN.finditer(text):
            axis, io = m.group(1), m.group(2)
            expected_io = io_for_role(turn.role)
            if io != expected_io:
                bad(f"conversations[{ti}].value", f"<{axis}-{io}> in a {turn.role} turn (use {expected_io})")
            tokens.append((axis, io, counts[(axis, io)], m.start(), m.end()))
            counts[(axis, io)] += 1
        _check_spans_and_boxes(sample, ti, text, tokens, values, bad)
    for axis_io, name in ST_VARIABLES.items():
        n_vals = len(values.get(axis_io, []))
        if counts[axis_io] != n_vals:
            bad(
                f"variables.{name}",
                f"{counts[axis_io]} <{axis_io[0]}-{axis_io[1]}> token(s) but {n_vals} value(s)",
            )


def _value(values, axis, io, idx):
    vals = values.get((axis, io), [])
    v = vals[idx] if idx < len(vals) else None
    return v if isinstance(v, (int, float)) else None


def _check_spans_and_boxes(sample: Sample, ti, text, tokens, values, bad) -> None:
    for a, b in zip(tokens, tokens[1:]):
        # a span: {<TEMP-X><TEMP-X>}
        if a[0] == b[0] == "TEMP" and a[4] == b[3] and text[a[3] - 1 : a[3]] == "{" and text[b[4] : b[4] + 1] == "}":
            s, e = _value(values, "TEMP", a[1], a[2]), _value(values, "TEMP", b[1], b[2])
            if s is not None and e is not None and s > e:
                bad(f"conversations[{ti}].value", f"span starts after it ends ({s} > {e})")
    for i in range(len(tokens) - 3):
        quad = tokens[i : i + 4]
        if [t[0] for t in quad] != ["WIDTH", "HEIGHT", "WIDTH", "HEIGHT"]:
            continue
        if any(quad[j][4] != quad[j + 1][3] for j in range(3)):
            continue
        x1, y1, x2, y2 = (_value(values, t[0], t[1], t[2]) for t in quad)
        if None not in (x1, y1, x2, y2) and (x1 > x2 or y1 > y2):
            bad(f"conversations[{ti}].value", f"box [{x1}, {y1}, {x2}, {y2}] has x1 > x2 or y1 > y2")
