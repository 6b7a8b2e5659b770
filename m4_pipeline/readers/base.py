"""The reader contract: an annotation file is read in *parts*, each part yields *items*.

A part is a piece of one file that a worker can read alone: the whole file, a byte range of a
JSON-lines file (starting at a line boundary, with the number of its first line), a parquet
row group. Planning lists parts, never items, so it can be split across workers.

An item is ``(file, locator, data, error)``: ``locator`` says where in the file it is ("line
12", "index 3", "row 7", "key abc", "member a/b.json"); a malformed item has ``error`` set and
no data, and becomes a quarantined record with that message. Where the reader can start in the
middle of a file (JSON lines, a JSON list, CSV, parquet), an item also carries ``offset`` and
``number``: ``Part(file, offset, stop, number)`` reads on from that very item, so a work unit
reads its own records without reading what comes before them. A file that cannot be read at all
(not found, not valid UTF-8, not the format) raises
:class:`~m4_pipeline.paths.AnnotationFileError`, which stops the build with one line naming the
file and the position.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from ..paths import AnnotationFileError, SourceRoot

__all__ = ["READERS", "AnnotationFileError", "Item", "Part", "Reader", "get_reader"]


@dataclass(frozen=True)
class Part:
    file: str  # relative to the source root
    start: int = 0  # byte offset / row group / item index, by reader
    stop: int | None = None  # exclusive; None: to the end
    first: int = 1  # number of the first line / row in the part (for locators)

    def to_list(self) -> list:
        return [self.file, self.start, self.stop, self.first]

    @classmethod
    def from_list(cls, v: list) -> Part:
        return cls(*v)


@dataclass
class Item:
    file: str
    locator: str
    data: Any = None
    error: str | None = None
    offset: int | None = None  # where a Part can start to read this item first (None: not resumable)
    number: int = 0  # its line / row / index number (a Part's ``first``)

    def resume_part(self, part: Part) -> Part | None:
        """The part that reads on from this item (None when the reader cannot start here)."""
        return None if self.offset is None else Part(self.file, self.offset, part.stop, self.number)


READERS: dict[str, type[Reader]] = {}


class Reader:
    """Base class of readers; a subclass declares ``name`` and registers itself."""

    name: ClassVar[str] = ""
    extensions: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("name"):
            READERS[cls.name] = cls

    def __init__(self, **options: Any):
        unknown = set(options) - set(self.option_names())
        if unknown:
            raise ValueError(f"reader {self.name!r}: unknown option(s) {sorted(unknown)}; valid: {self.option_names()}")
        self.options = options

    @classmethod
    def option_names(cls) -> list[str]:
        return []

    def parts(self, src: SourceRoot, rel: str, *, target_bytes: int = 64 << 20) -> list[Part]:
        """The pieces of ``rel`` to read independently (default: the whole file)."""
        src.annotation(rel)
        return [Part(rel)]

    def read(self, src: SourceRoot, part: Part) -> Iterator[Item]:
        raise NotImplementedError

    def read_file(self, src: SourceRoot, rel: str) -> Iterator[Item]:
        for part in self.parts(src, rel):
            yield from self.read(src, part)


def get_reader(name: str, **options: Any) -> Reader:
    try:
        cls = READERS[name]
    except KeyError:
        raise ValueError(f"unknown reader {name!r}; readers: {', '.join(sorted(READERS))}") from None
    return cls(**options)


def decode_text(raw: bytes, rel: str) -> str:
    """UTF-8 text (a BOM is dropped); invalid UTF-8 stops the build naming the byte position."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise AnnotationFileError(rel, f"not valid UTF-8 ({err.reason})", f"at byte {err.start}") from None
