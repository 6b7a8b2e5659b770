"""Serialization of a :class:`Sample` to and from the two released JSON formats.

``to_record(from_record(d)) == d`` holds for every released record, key order included:
unknown fields are carried through untouched.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from .errors import SourceError
from .sample import Family, Media, Provenance, Sample, Turn


class FormatError(SourceError):
    """A record that does not have the shape of its released format (``invalid_annotation``)."""


# Where ``conversations`` sits when a record is built by the pipeline (not read from a release).
_CANONICAL_AFTER = {"m4": ("sample_id",), "st": ("id", "type", "video", "image", "meta")}


def _turn_to_json(turn: Turn) -> dict[str, Any]:
    return {"from": turn.role, "value": turn.value, **turn.extra}


def _turn_from_json(obj: Any, where: str) -> Turn:
    if not isinstance(obj, dict):
        raise FormatError(f"{where}: a turn must be an object, got {type(obj).__name__}")
    if "from" not in obj or "value" not in obj:
        raise FormatError(f"{where}: a turn needs 'from' and 'value', got keys {sorted(obj)}")
    extra = {k: v for k, v in obj.items() if k not in ("from", "value")}
    return Turn(role=obj["from"], value=obj["value"], extra=extra)


def to_record(sample: Sample) -> dict[str, Any]:
    """The sample as a record of its released format (M4-Instruct or ST-Align)."""
    items = list(sample.record.items())
    pos = sample.conv_pos
    if pos is None:
        after = _CANONICAL_AFTER[sample.family]
        pos = sum(1 for k, _ in items if k in after)
    conv = ("conversations", [_turn_to_json(t) for t in sample.conversations])
    items.insert(min(pos, len(items)), conv)
    return dict(items)


def from_record(
    obj: Any,
    family: Family,
    *,
    key: str = "",
    media: list[Media] | None = None,
    provenance: Provenance | None = None,
) -> Sample:
    """Read a released record into a :class:`Sample` (media and provenance are separate)."""
    if family not in ("m4", "st"):
        raise FormatError(f"unknown family {family!r}: expected 'm4' or 'st'")
    if not isinstance(obj, dict):
        raise FormatError(f"{key or 'record'}: a record must be an object, got {type(obj).__name__}")
    if "conversations" not in obj:
        raise FormatError(f"{key or 'record'}: missing field 'conversations'")
    convs = obj["conversations"]
    if not isinstance(convs, list):
        raise FormatError(f"{key or 'record'}: field 'conversations' must be a list")
    keys = list(obj)
    record = {k: v for k, v in obj.items() if k != "conversations"}
    turns = [_turn_from_json(t, f"{key or 'record'}: conversations[{i}]") for i, t in enumerate(convs)]
    sample = Sample(
        key=key,
        family=family,
        conversations=turns,
        record=record,
        media=list(media or []),
        provenance=provenance,
    )
    pos = keys.index("conversations")
    canonical = sum(1 for k in record if k in _CANONICAL_AFTER[family])
    sample.conv_pos = None if pos == canonical else pos
    return sample


def m4_record(
    sample_id: Any,
    images: list[str],
    *,
    dataset: str,
    question_type: str,
    task_instruction: str = "",
    choice_list: list | None = None,
    split: str = "train",
) -> dict[str, Any]:
    """The non-conversation fields of an M4-Instruct record, in the released key order.

    ``num_sample`` (the number of samples of that dataset) is filled in by the writer.
    """
    return {
        "sample_id": sample_id,
        "image": images,
        "choice_list": choice_list,
        "metadata": {
            "dataset": dataset,
            "split": split,
            "num_sample": None,
            "task_instruction": task_instruction,
            "question_type": question_type,
        },
    }


def detect_family(obj: dict[str, Any]) -> Family:
    """ST-Align records carry ``variables``; M4-Instruct records do not."""
    return "st" if "variables" in obj else "m4"


# --- the shard member form: record + provenance + media descriptions -------------------------


def to_shard_json(sample: Sample) -> dict[str, Any]:
    """The ``<key>.json`` member: the released record plus a ``provenance`` object."""
    rec = to_record(sample)
    prov = asdict(sample.provenance) if sample.provenance else {}
    for optional in ("templates", "ops"):  # written only when used
        if not prov.get(optional):
            prov.pop(optional, None)
    prov["family"] = sample.family
    prov["media"] = [m.describe() for m in sample.media]
    if sample.conv_pos is not None:
        prov["conv_pos"] = sample.conv_pos
    rec["provenance"] = prov
    return rec


def from_shard_json(obj: dict[str, Any], key: str, media_bytes: list[bytes] | None = None) -> Sample:
    """Rebuild a sample from a shard's ``<key>.json`` (and its media members, in order)."""
    obj = dict(obj)
    prov = dict(obj.pop("provenance", None) or {})
    family = prov.pop("family", None) or detect_family(obj)
    described = prov.pop("media", [])
    conv_pos = prov.pop("conv_pos", None)
    media = []
    for i, d in enumerate(described):
        data = media_bytes[i] if media_bytes is not None and i < len(media_bytes) else b""
        media.append(Media(data=data, **d))
    known = {f for f in Provenance.__dataclass_fields__}
    provenance = Provenance(**{k: v for k, v in prov.items() if k in known}) if prov else None
    sample = from_record(obj, family, key=key, media=media, provenance=provenance)
    if conv_pos is not None:
        sample.conv_pos = conv_pos
    return sample
