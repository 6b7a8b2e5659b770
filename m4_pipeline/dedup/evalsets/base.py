"""What a benchmark reader yields: one :class:`BenchItem` per evaluation item.

A benchmark is one module in this package with ``read(root)`` (walk the benchmark's published
files, yield items in a stable order) and ``write_miniature(root)`` (a small copy in the same
layout, synthetic media, for the tests); the registry in ``__init__`` names them all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class BenchmarkLayoutError(ValueError):
    """A benchmark file that is missing or does not have its published shape."""


@dataclass
class BenchItem:
    benchmark: str  # "<evalset>/<file or split>", the unit reports are grouped by
    item_id: str  # the item's own id, or its position in the file
    questions: list[str] = field(default_factory=list)  # human turns / expressions / queries
    images: list[Path] = field(default_factory=list)  # image files (a missing one is reported)
    videos: list[Path] = field(default_factory=list)  # video files (a missing one is reported)
    video_ids: list[str] = field(default_factory=list)  # lower-case video ids (file stems)
    image_ids: list[str] = field(default_factory=list)  # dataset image ids, e.g. "coco:581857"


def load_json(path: Path) -> Any:
    if not path.is_file():
        raise BenchmarkLayoutError(f"benchmark file not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise BenchmarkLayoutError(f"{path}: malformed JSON: {err.msg} (line {err.lineno})") from err


def load_json_list(path: Path) -> list:
    data = load_json(path)
    if not isinstance(data, list):
        raise BenchmarkLayoutError(f"{path}: expected a JSON list of items, got {type(data).__name__}")
    return data


def human_turns(conversations: Any, where: str) -> list[str]:
    if not isinstance(conversations, list):
        raise BenchmarkLayoutError(f"{where}: 'conversations' must be a list")
    return [t["value"] for t in conversations if isinstance(t, dict) and t.get("from") == "human" and t.get("value")]


def first_existing(candidates: list[Path]) -> Path:
    """The first candidate that exists, else the first (so the index can report it missing)."""
    return next((p for p in candidates if p.is_file()), candidates[0])
