"""Split zip archives (``zip -s``: ``name.z01``, ``name.z02``, ..., ``name.zip``), read in place.

M4-Instruct-Data ships DreamSim as ``dreamsim_split.z01`` + ``dreamsim_split.zip`` [V]. Python's
``zipfile`` cannot read a spanned archive: every central directory entry names the segment
(disk) its local header starts on and an offset *within* that segment, and member data may run
across a segment boundary. The segments are read here as one byte stream (their sizes give each
segment's start); the central directory (zip64 included) is parsed from the last segment, and a
member is its local header plus its compressed bytes, stored or deflated, checked against its
CRC-32. Nothing is extracted or merged on disk.
"""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

from ..errors import MediaError
from ..paths import AnnotationFileError, SourceRoot

_EOCD, _EOCD64, _LOC64 = b"PK\x05\x06", b"PK\x06\x06", b"PK\x06\x07"
_CENTRAL, _LOCAL = b"PK\x01\x02", b"PK\x03\x04"


def split_segments(src: SourceRoot, rel: str) -> list[str] | None:
    """``[name.z01, ..., name.zip]`` when ``rel`` (``name.zip``) is the last segment of a split
    archive, else None."""
    if not rel.endswith(".zip"):
        return None
    stem = rel[: -len(".zip")]
    parts = [p for p in src.glob(f"{stem}.z[0-9]*") if re.fullmatch(re.escape(stem) + r"\.z\d+", p)]
    if not parts:
        return None
    return sorted(parts, key=lambda p: int(p.rsplit(".z", 1)[1])) + [rel]


class SplitZip:
    """The members of one split zip, by name (the interface :class:`ArchiveSet` uses)."""

    def __init__(self, src: SourceRoot, segments: list[str]):
        self.rel = segments[-1]
        self.paths = [src.annotation(s) for s in segments]
        self.starts, total = [], 0
        for p in self.paths:
            self.starts.append(total)
            total += p.stat().st_size
        self.size = total
        self._handles: dict[int, object] = {}
        self.members: dict[str, tuple[int, int, int, int, int]] = {}  # name -> (abs offset, csize, usize, method, crc)
        try:
            self._read_directory()
        except (struct.error, ValueError, IndexError) as err:
            raise AnnotationFileError(self.rel, f"not a readable split zip: {err}") from None

    # --- the byte stream over the segments ---------------------------------------------------------
    def _read_at(self, offset: int, n: int) -> bytes:
        out = bytearray()
        while n > 0:
            seg = max(i for i, start in enumerate(self.starts) if start <= offset)
            if seg not in self._handles:
                self._handles[seg] = open(self.paths[seg], "rb")  # noqa: SIM115 (kept open, closed by close())
            fh = self._handles[seg]
            fh.seek(offset - self.starts[seg])
            chunk = fh.read(n)
            if not chunk:
                raise ValueError(f"read past the end of segment {self.paths[seg].name}")
            out += chunk
            offset += len(chunk)
            n -= len(chunk)
        return bytes(out)

    def close(self) -> None:
        for fh in self._handles.values():
            fh.close()
        self._handles.clear()

    # --- the central directory --------------------------------------------------------------------
    def _read_directory(self) -> None:
        last = self.paths[-1]
        tail_len = min(last.stat().st_size, 65557)
        tail = self._read_at(self.size - tail_len, tail_len)
        at = tail.rfind(_EOCD)
        if at < 0:
            raise ValueError("no end of central directory record")
        _, _, cd_disk, _, entries, cd_size, cd_offset, _ = struct.unpack("<4s4H2LH", tail[at : at + 22])
        loc = at - 20
        if loc >= 0 and tail[loc : loc + 4] == _LOC64:
            disk64, rel64, _ = struct.unpack("<LQL", tail[loc + 4 : loc + 20])
            rec = self._read_at(self.starts[disk64] + rel64, 56)
            if rec[:4] != _EOCD64:
                raise ValueError("zip64 end of central directory record not found")
            _, _, _, _, _, cd_disk, _, entries, cd_size, cd_offset = struct.unpack("<4sQ2H2L4Q", rec)
        data = self._read_at(self.starts[cd_disk] + cd_offset, cd_size)
        pos = 0
        for _ in range(entries):
            if data[pos : pos + 4] != _CENTRAL:
                raise ValueError(f"bad central directory entry at {pos}")
            fields = struct.unpack("<4s6H3L5H2L", data[pos : pos + 46])
            flags, method, crc, csize, usize, n_name, n_extra, n_comment, disk = fields[3:5] + fields[7:14]
            offset = fields[16]
            name = data[pos + 46 : pos + 46 + n_name].decode("utf-8" if flags & 0x800 else "cp437")
            extra = data[pos + 46 + n_name : pos + 46 + n_name + n_extra]
            usize, csize, offset, disk = _zip64_fields(extra, usize, csize, offset, disk)
            pos += 46 + n_name + n_extra + n_comment
            if flags & 0x1:
                raise ValueError(f"{name}: encrypted members are not supported")
            if not name.endswith("/"):
                self.members[name] = (self.starts[disk] + offset, csize, usize, method, crc)

    def namelist(self) -> list[str]:
        return list(self.members)

    def read(self, name: str, max_bytes: int) -> bytes:
        offset, csize, usize, method, crc = self.members[name]
        if usize > max_bytes:
            raise MediaError(f"{name}: {usize} bytes exceeds the member limit")
        header = self._read_at(offset, 30)
        if header[:4] != _LOCAL:
            raise MediaError(f"{name} in {self.rel}: no local header at its offset")
        n_name, n_extra = struct.unpack("<HH", header[26:30])
        raw = self._read_at(offset + 30 + n_name + n_extra, csize)
        if method == 0:
            data = raw
        elif method == 8:
            data = zlib.decompressobj(-15).decompress(raw, max_bytes + 1)
        else:
            raise MediaError(f"{name} in {self.rel}: compression method {method} is not supported")
        if len(data) != usize or zlib.crc32(data) != crc:
            raise MediaError(f"{name} in {self.rel}: size or CRC-32 does not match the directory")
        return data


def _zip64_fields(extra: bytes, usize: int, csize: int, offset: int, disk: int) -> tuple[int, int, int, int]:
    """The zip64 extra field's values for the fields the central entry marks as too large."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack("<HH", extra[pos : pos + 4])
        if tag == 0x0001:
            body, k = extra[pos + 4 : pos + 4 + size], 0
            if usize == 0xFFFFFFFF:
                usize, k = struct.unpack("<Q", body[k : k + 8])[0], k + 8
            if csize == 0xFFFFFFFF:
                csize, k = struct.unpack("<Q", body[k : k + 8])[0], k + 8
            if offset == 0xFFFFFFFF:
                offset, k = struct.unpack("<Q", body[k : k + 8])[0], k + 8
            if disk == 0xFFFF:
                disk = struct.unpack("<L", body[k : k + 4])[0]
            break
        pos += 4 + size
    return usize, csize, offset, disk


def write_split_zip(folder: Path, stem: str, members: dict[str, bytes], segment_size: int) -> list[Path]:
    """A split archive as ``zip -s`` writes one (the split signature, then the zip stream cut into
    ``segment_size`` pieces, the directory naming each entry's segment and offset in it): the
    miniature's stand-in for the release's DreamSim archive."""
    import io
    import zipfile

    buf = io.BytesIO()
    buf.write(b"PK\x07\x08")  # the spanning signature
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            zf.writestr(info, data)
    whole = bytearray(buf.getvalue())
    at = whole.rfind(_EOCD)
    _, _, _, _, entries, cd_size, cd_offset, _ = struct.unpack("<4s4H2LH", whole[at : at + 22])
    pos = cd_offset
    for _ in range(entries):  # each entry's (disk, offset in disk)
        n_name, n_extra, n_comment = struct.unpack("<3H", whole[pos + 28 : pos + 34])
        offset = struct.unpack("<L", whole[pos + 42 : pos + 46])[0]  # from the stream's start
        whole[pos + 34 : pos + 36] = struct.pack("<H", offset // segment_size)
        whole[pos + 42 : pos + 46] = struct.pack("<L", offset % segment_size)
        pos += 46 + n_name + n_extra + n_comment
    # the central directory and the end record go in the last segment, whole
    body, tail = whole[:cd_offset], whole[cd_offset:]
    cuts = [body[i : i + segment_size] for i in range(0, len(body), segment_size)] or [b""]
    last = len(cuts) if len(cuts[-1]) == segment_size else len(cuts) - 1
    segments = cuts[:last]
    final = (cuts[last] if last < len(cuts) else b"") + tail
    at = final.rfind(_EOCD)
    n = len(segments)
    final = bytearray(final)
    final[at + 4 : at + 8] = struct.pack("<2H", n, n)
    final[at + 16 : at + 20] = struct.pack("<L", len(final) - len(tail))
    paths = []
    for i, seg in enumerate(segments):
        paths.append(Path(folder) / f"{stem}.z{i + 1:02d}")
        paths[-1].write_bytes(bytes(seg))
    paths.append(Path(folder) / f"{stem}.zip")
    paths[-1].write_bytes(bytes(final))
    return paths
