"""The contract every source adapter implements.

A source implements two methods: ``list_records`` (walk its published annotation files and
yield one :class:`RawRecord` per future sample, in a stable order) and ``to_sample`` (turn one
record into a :class:`~m4_pipeline.sample.Sample`, loading its media). The base class owns the
rest: keys, provenance, and turning failures into quarantine reasons. Each adapter module also
has a ``write_miniature(root)`` function that writes a small copy of the source in its real
published layout, for the tests and the demo.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from .. import __version__
from ..errors import MediaError, SourceError
from ..sample import Family, Provenance, Sample, make_key

__all__ = ["Adapter", "MediaError", "RawRecord", "SourceError", "require_fields"]


@dataclass
class RawRecord:
    """One annotation record, before it becomes a sample.

    ``error`` is set (and ``data`` is None) when the record could not even be parsed; it is
    still counted as read and is quarantined with that reason.
    """

    source_file: str  # relative to the source root
    locator: str  # "line 12", "row 7", "index 3", "key abc", ...
    source_id: str  # the record's own id, used for the sample key
    data: Any = None
    error: str | None = None

    def to_json(self) -> str:
        return json.dumps([self.source_file, self.locator, self.source_id, self.data, self.error])

    @classmethod
    def from_json(cls, text: str) -> RawRecord:
        return cls(*json.loads(text))


@dataclass
class NoParams:
    pass


class Adapter:
    """Base class of source adapters. Subclasses set ``name``, ``family`` and ``Params``."""

    name: ClassVar[str]
    family: ClassVar[Family]
    Params: ClassVar[type] = NoParams
    description: ClassVar[str] = ""

    def __init__(self, root: str | Path, params: Any = None, *, source_name: str | None = None):
        self.root = Path(root)
        self.params = params if params is not None else self.Params()
        self.source_name = source_name or self.name

    # --- to implement ------------------------------------------------------------------------
    def list_records(self) -> Iterator[RawRecord]:
        raise NotImplementedError

    def to_sample(self, record: RawRecord) -> Sample:
        """Build the sample; raise SourceError / MediaError for input that cannot be used."""
        raise NotImplementedError

    # --- owned by the base class -------------------------------------------------------------
    def key_for(self, record: RawRecord) -> str:
        return make_key(self.source_name, record.source_id)

    def build(
        self, record: RawRecord, *, recipe: str = "", recipe_version: str = "", recipe_sha256: str = ""
    ) -> Sample:
        if record.error is not None:
            raise SourceError("parse_error", record.error)
        sample = self.to_sample(record)
        sample.key = self.key_for(record)
        sample.provenance = Provenance(
            dataset=self.source_name,
            source_file=record.source_file,
            locator=record.locator,
            recipe=recipe,
            recipe_version=recipe_version,
            adapter=self.name,
            recipe_sha256=recipe_sha256,
            pipeline_version=__version__,
        )
        return sample

    # --- helpers for subclasses --------------------------------------------------------------
    def require_file(self, rel: str | Path, what: str = "file") -> Path:
        path = self.root / rel
        if not path.is_file():
            raise MediaError(f"missing {what}: {rel}", reason="missing_media")
        return path

    def annotation_path(self, rel: str) -> Path:
        """An annotation file of the source; a missing one stops the build (it is not a record)."""
        path = self.root / rel
        if not path.is_file():
            raise FileNotFoundError(f"{self.name}: annotation file {path} not found")
        return path

    def read_json_list(self, rel: str) -> list:
        items = json.loads(self.annotation_path(rel).read_text())
        if not isinstance(items, list):
            raise ValueError(f"{self.name}: {rel} must hold a JSON list")
        return items

    def iter_json_lines(self, rel: str) -> Iterator[tuple[int, Any, str | None]]:
        """(line number, parsed object or None, error or None) for each non-blank line."""
        with open(self.annotation_path(rel), encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    yield lineno, json.loads(line), None
                except json.JSONDecodeError as err:
                    yield lineno, None, f"{rel} line {lineno}: malformed JSON: {err.msg}"


def require_fields(obj: Any, fields: tuple[str, ...], where: str) -> None:
    if not isinstance(obj, dict):
        raise SourceError("invalid_annotation", f"{where}: expected an object, got {type(obj).__name__}")
    missing = [f for f in fields if f not in obj]
    if missing:
        raise SourceError("invalid_annotation", f"{where}: missing field(s) {missing}")
