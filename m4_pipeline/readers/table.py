"""Table readers: CSV / TSV with a header, parquet by row group, and plain text lines.

``csv`` / ``tsv``: one item per row, a dict keyed by the header; ``columns`` lists the columns
the source must have (a header without them stops the build naming the missing ones); a row
with the wrong number of cells is one bad item. Locators are ``row N`` with the header as row 1.
``parquet``: one part per row group, one item per row (image structs as ``{bytes, path}``);
locators ``row N`` count from 0 over the whole file, as the HF viewer does. Binary values (the
embedded images of HF datasets) are replaced by a small reference, ``{"$blob": {file, row,
column, at}, "size": n}`` (option ``blobs: ref``, the default), so that records stay small plain
JSON on their way to the workers; :class:`ParquetBlobs` reads the bytes back where the media are
loaded. ``blobs: inline`` keeps the bytes in the record.
``lines``: one item ``{"line": text}`` per non-blank line.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

from ..errors import MediaError
from ..paths import AnnotationFileError, SourceRoot
from .base import Item, Part, Reader, decode_text

csv.field_size_limit(1 << 26)  # caption cells of Panda-70M-like tables are long


class Csv(Reader):
    name = "csv"
    extensions = (".csv",)
    delimiter = ","

    @classmethod
    def option_names(cls):
        return ["columns", "delimiter"]

    def read(self, src: SourceRoot, part: Part) -> Iterator[Item]:
        """Rows from the part's start (the header is always read from the top of the file); each
        item carries the byte offset where its row starts, so a part can start at any row."""
        path = src.annotation(part.file)
        delimiter = self.options.get("delimiter", self.delimiter)
        with open(path, "rb") as fh:
            consumed = 0

            def lines():
                nonlocal consumed
                for raw in fh:
                    try:
                        text = raw.decode("utf-8-sig" if consumed == 0 else "utf-8")
                    except UnicodeDecodeError as err:
                        raise AnnotationFileError(part.file, f"not valid UTF-8 ({err.reason})",
                                                  f"at byte {consumed + err.start}") from None  # fmt: skip
                    consumed += len(raw)
                    yield text

            try:
                header = next(csv.reader(lines(), delimiter=delimiter), None)
            except csv.Error as err:
                raise AnnotationFileError(part.file, f"unreadable header: {err}") from None
            if not header:
                raise AnnotationFileError(part.file, "empty file: no header row")
            missing = [c for c in self.options.get("columns", []) if c not in header]
            if missing:
                raise AnnotationFileError(part.file, f"header lacks column(s) {missing}; it has {header}")
            if part.start:
                fh.seek(part.start)
                consumed = part.start
            row_no = part.first - 1 if part.start else 1
            reader = csv.reader(lines(), delimiter=delimiter)
            while True:
                offset = consumed
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as err:
                    row_no += 1
                    yield Item(part.file, f"row {row_no}", None, f"{part.file} row {row_no}: {err}", offset, row_no)
                    continue
                row_no += 1
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    msg = f"{part.file} row {row_no}: {len(row)} cells, expected {len(header)}"
                    yield Item(part.file, f"row {row_no}", None, msg, offset, row_no)
                    continue
                yield Item(part.file, f"row {row_no}", dict(zip(header, row)), None, offset, row_no)


class Tsv(Csv):
    name = "tsv"
    extensions = (".tsv",)
    delimiter = "\t"


class Parquet(Reader):
    name = "parquet"
    extensions = (".parquet",)

    @classmethod
    def option_names(cls):
        return ["columns", "blobs"]

    def __init__(self, **options: Any):
        super().__init__(**options)
        if self.options.get("blobs", "ref") not in ("ref", "inline"):
            raise ValueError(f"reader 'parquet': blobs {self.options['blobs']!r} must be ref or inline")

    def _open(self, src: SourceRoot, rel: str):
        return open_parquet(src, rel)

    def parts(self, src: SourceRoot, rel: str, *, target_bytes: int = 64 << 20) -> list[Part]:
        meta = self._open(src, rel).metadata
        parts, first = [], 0
        for g in range(meta.num_row_groups):
            parts.append(Part(rel, g, g + 1, first))
            first += meta.row_group(g).num_rows
        return parts or [Part(rel, 0, 0, 0)]  # parquet rows count from 0: ``first`` is a row number

    def read(self, src: SourceRoot, part: Part) -> Iterator[Item]:
        pf = self._open(src, part.file)
        columns = self.options.get("columns")
        missing = [c for c in columns or [] if c not in pf.schema_arrow.names]
        if missing:
            raise AnnotationFileError(part.file, f"lacks column(s) {missing}; it has {pf.schema_arrow.names}")
        stop = pf.metadata.num_row_groups if part.stop is None else part.stop
        row = sum(pf.metadata.row_group(g).num_rows for g in range(part.start))
        for g in range(part.start, stop):
            try:
                table = pf.read_row_group(g, columns=columns)
            except Exception as err:
                raise AnnotationFileError(part.file, f"cannot read row group {g}: {err}") from None
            inline = self.options.get("blobs", "ref") == "inline"
            for obj in table.to_pylist():
                if row >= part.first:  # a part may start inside a row group
                    if not inline:
                        obj = {k: _refs(v, part.file, row, k, []) for k, v in obj.items()}
                    yield Item(part.file, f"row {row}", obj, offset=g, number=row)
                row += 1


def open_parquet(src: SourceRoot, rel: str):
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(src.annotation(rel))
    except Exception as err:  # pyarrow raises ArrowInvalid / OSError for a bad file
        raise AnnotationFileError(rel, f"not a readable parquet file: {err}") from None


def _refs(value: Any, rel: str, row: int, column: str, at: list) -> Any:
    """``value`` with every bytes value replaced by a reference to where it lies."""
    if isinstance(value, (bytes, bytearray)):
        return {"$blob": {"file": rel, "row": row, "column": column, "at": list(at)}, "size": len(value)}
    if isinstance(value, dict):
        return {k: _refs(v, rel, row, column, [*at, k]) for k, v in value.items()}
    if isinstance(value, list):
        return [_refs(v, rel, row, column, [*at, i]) for i, v in enumerate(value)]
    return value


def is_blob(value: Any) -> bool:
    """Whether ``value`` is a reference the parquet reader put in place of bytes."""
    return isinstance(value, dict) and isinstance(value.get("$blob"), dict)


class ParquetBlobs:
    """Reads the bytes a blob reference points at: the row's column is read from its row group
    (the last row group column read is kept, as consecutive records share it)."""

    def __init__(self, src: SourceRoot):
        self.src = src
        self._groups: dict[str, list[int]] = {}  # file -> first row of each row group
        self._last: tuple | None = None  # (file, group, column) -> its arrow column

    def read(self, ref: Any, what: str = "blob") -> bytes:
        if not is_blob(ref):
            raise MediaError(f"{what}: {ref!r:.80} is not a blob reference", reason="invalid_annotation")
        loc = ref["$blob"]
        rel, row, column, at = loc.get("file"), loc.get("row"), loc.get("column"), loc.get("at") or []
        if not isinstance(rel, str) or not isinstance(row, int) or not isinstance(column, str):
            raise MediaError(f"{what}: malformed blob reference {loc!r:.80}", reason="invalid_annotation")
        pf = open_parquet(self.src, rel)
        firsts = self._groups.get(rel)
        if firsts is None:
            firsts, n = [], 0
            for g in range(pf.metadata.num_row_groups):
                firsts.append(n)
                n += pf.metadata.row_group(g).num_rows
            firsts.append(n)
            self._groups[rel] = firsts
        group = next((g for g in range(len(firsts) - 1) if firsts[g] <= row < firsts[g + 1]), None)
        if group is None or column not in pf.schema_arrow.names:
            raise MediaError(f"{what}: {rel} has no row {row} / column {column!r}", reason="missing_media")
        key = (rel, group, column)
        if self._last is None or self._last[0] != key:
            self._last = (key, pf.read_row_group(group, columns=[column]).column(0))
        value = self._last[1][row - firsts[group]].as_py()
        for step in at:
            try:
                value = value[step]
            except (KeyError, IndexError, TypeError):
                raise MediaError(f"{what}: {rel} row {row} {column}{at} not found", reason="missing_media") from None
        if not isinstance(value, (bytes, bytearray)):
            raise MediaError(f"{what}: {rel} row {row} {column}{at} holds no bytes", reason="missing_media")
        return bytes(value)


class Lines(Reader):
    name = "lines"
    extensions = (".txt",)

    def read(self, src: SourceRoot, part: Part) -> Iterator[Item]:
        text = decode_text(src.annotation(part.file).read_bytes(), part.file)
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                yield Item(part.file, f"line {n}", {"line": line.strip()})
