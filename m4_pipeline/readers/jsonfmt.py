"""JSON readers: a JSON list (streamed), JSON lines (split by byte range), a JSON object keyed by id.

``json`` reads a top-level list item by item in bounded memory; with ``field`` it reads the
list found under that key path of a top-level object (DEMON's ``{"metadata", "data"}``).
``jsonl`` reads one object per line; a malformed line is one bad item, not a bad file.
``json_dict`` reads ``{id: value}`` (optionally under ``field``, e.g. COIN's ``database``) and
yields each value with its id as ``_key``.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from typing import Any

from ..paths import AnnotationFileError, SourceRoot
from .base import Item, Part, Reader, decode_text

CHUNK = 1 << 20


def load_json(src: SourceRoot, rel: str) -> Any:
    """A whole JSON file; a malformed one stops the build naming the file and the position."""
    text = decode_text(src.annotation(rel).read_bytes(), rel)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise AnnotationFileError(rel, f"malformed JSON: {err.msg}", f"line {err.lineno} column {err.colno}") from None
    except RecursionError:
        raise AnnotationFileError(rel, "JSON nested too deeply") from None


def _at(obj: Any, field: str, rel: str) -> Any:
    for step in filter(None, field.split(".")):
        if not isinstance(obj, dict) or step not in obj:
            raise AnnotationFileError(rel, f"no {field!r} in the file's top-level object")
        obj = obj[step]
    return obj


def iter_json_array(fh, rel: str, *, start: int = 0) -> Iterator[tuple[Any, int]]:
    """``(item, byte offset)`` for the items of a top-level JSON list, parsed one at a time from a
    binary file. ``start`` > 0 is the byte offset of an item inside the list (from an earlier
    pass): reading resumes there without reading what precedes it."""
    decoder = json.JSONDecoder()
    text_decoder = codecs.getincrementaldecoder("utf-8-sig" if start == 0 else "utf-8")()
    fh.seek(start)
    buf, pos, eof = "", 0, False
    byte_at_pos = start  # the byte offset of buf[pos]

    def more() -> bool:
        nonlocal buf, pos, eof
        raw = fh.read(CHUNK)
        try:
            buf = buf[pos:] + text_decoder.decode(raw, final=not raw)
        except UnicodeDecodeError as err:
            at = byte_at_pos + len(buf[pos:].encode("utf-8")) + err.start
            raise AnnotationFileError(rel, f"not valid UTF-8 ({err.reason})", f"near byte {at}") from None
        pos, eof = 0, not raw
        return bool(raw)

    def advance(to: int) -> None:
        nonlocal pos, byte_at_pos
        segment = buf[pos:to]
        byte_at_pos += len(segment) if segment.isascii() else len(segment.encode("utf-8"))
        pos = to

    def skip_ws() -> None:
        while True:
            end = pos
            while end < len(buf) and buf[end] in " \t\r\n":
                end += 1
            advance(end)
            if pos < len(buf) or eof or not more():
                return

    more()
    skip_ws()
    if start == 0:
        if pos >= len(buf) or buf[pos] != "[":
            raise AnnotationFileError(rel, "expected a JSON list ('[' at the start)")
        advance(pos + 1)
    index = 0
    while True:
        skip_ws()
        if pos < len(buf) and buf[pos] == "]":
            return
        while True:
            try:
                obj, end = decoder.raw_decode(buf, pos)
                if end >= len(buf) and not eof and more():  # a number cut at the chunk end
                    continue
                break
            except json.JSONDecodeError as err:
                if not eof and more():
                    continue
                msg = f"malformed JSON in item {index}: {err.msg}"
                raise AnnotationFileError(rel, msg, f"at byte {byte_at_pos}") from None
            except RecursionError:
                raise AnnotationFileError(rel, f"item {index}: JSON nested too deeply") from None
        yield obj, byte_at_pos
        index += 1
        advance(end)
        skip_ws()
        if pos < len(buf) and buf[pos] == ",":
            advance(pos + 1)
        elif pos < len(buf) and buf[pos] == "]":
            return
        else:
            raise AnnotationFileError(rel, f"expected ',' or ']' after item {index - 1}", f"at byte {byte_at_pos}")


class JsonList(Reader):
    name = "json"
    extensions = (".json",)

    @classmethod
    def option_names(cls):
        return ["field"]

    def read(self, src: SourceRoot, part: Part) -> Iterator[Item]:
        field = self.options.get("field")
        if field:
            items = _at(load_json(src, part.file), field, part.file)
            if not isinstance(items, list):
                raise AnnotationFileError(part.file, f"{field!r} is not a list")
            for i, obj in enumerate(items):
                yield Item(part.file, f"index {i}", obj)
            return
        first = part.first if part.start else 0
        with open(src.annotation(part.file), "rb") as fh:
            for i, (obj, offset) in enumerate(iter_json_array(fh, part.file, start=part.start), start=first):
                yield Item(part.file, f"index {i}", obj, offset=offset, number=i)


class JsonDict(Reader):
    name = "json_dict"

    @classmethod
    def option_names(cls):
        return ["field"]

    def read(self, src: SourceRoot, part: Part) -> Iterator[Item]:
        obj = _at(load_json(src, part.file), self.options.get("field") or "", part.file)
        if not isinstance(obj, dict):
            raise AnnotationFileError(part.file, "expected a JSON object keyed by id")
        for key, value in obj.items():
            data = {"_key": key, **value} if isinstance(value, dict) else {"_key": key, "_value": value}
            yield Item(part.file, f"key {key}", data)


class JsonLines(Reader):
    name = "jsonl"
    extensions = (".jsonl",)

    def parts(self, src: SourceRoot, rel: str, *, target_bytes: int = 64 << 20) -> list[Part]:
        """Byte ranges of about ``target_bytes`` starting at line boundaries, each with the number
        of its first line (counted once here, so locators stay true)."""
        path = src.annotation(rel)
        size = path.stat().st_size
        if size <= target_bytes:
            return [Part(rel)]
        parts, start, line = [], 0, 1
        with open(path, "rb") as fh:
            while start < size:
                fh.seek(min(size, start + target_bytes))
                fh.readline()
                stop = min(size, fh.tell())
                parts.append(Part(rel, start, stop, line))
                fh.seek(start)
                remaining, newlines = stop - start, 0
                while remaining > 0:
                    block = fh.read(min(CHUNK, remaining))
                    newlines += block.count(b"\n")
                    remaining -= len(block)
                start, line = stop, line + newlines
        return parts

    def read(self, src: SourceRoot, part: Part) -> Iterator[Item]:
        with open(src.annotation(part.file), "rb") as fh:
            fh.seek(part.start)
            lineno = part.first
            while part.stop is None or fh.tell() < part.stop:
                offset = fh.tell()
                raw = fh.readline()
                if not raw:
                    break
                here = lineno
                lineno += 1
                if part.start == 0 and here == 1:
                    raw = raw.removeprefix(codecs.BOM_UTF8)
                if not raw.strip():
                    continue
                data, error = None, None
                try:
                    data = json.loads(raw.decode("utf-8"))
                except UnicodeDecodeError as err:
                    error = f"{part.file} line {here}: not valid UTF-8 ({err.reason})"
                except json.JSONDecodeError as err:
                    error = f"{part.file} line {here}: malformed JSON: {err.msg}"
                except RecursionError:
                    error = f"{part.file} line {here}: JSON nested too deeply"
                yield Item(part.file, f"line {here}", data, error, offset=offset, number=here)
