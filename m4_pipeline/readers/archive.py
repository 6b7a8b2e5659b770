"""Files inside zip and tar archives, read in place (nothing is extracted).

:class:`ArchiveSet` indexes the members of one or more archives of a source — zips, the
``_partN`` zips a side file lists (Mantis-Instruct's ``{split}_images_zips.txt``), split zips
(``name.z01`` ... ``name.zip``, :mod:`.splitzip`), plain tars —
and reads a member by name. A member is also found under its name without the archive's one
extra outer folder (the M4-Instruct zips sometimes carry one). Member names are lookup keys
only; they are never joined to a path on disk. ``tar.gz`` archives cannot be read at random: they
are streamed member by member with :func:`iter_tar_members`.

The ``zip_members`` / ``tar_members`` readers yield annotation files stored inside an archive
(one item per member matching ``pattern``, parsed as JSON unless ``format: text``).
"""

from __future__ import annotations

import fnmatch
import json
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import MediaError
from ..paths import AnnotationFileError, SourceRoot
from .base import Item, Part, Reader, decode_text
from .splitzip import SplitZip, split_segments

MAX_MEMBER_BYTES = 1 << 30  # a member larger than this is refused (a zip bomb, or not an image)


class ArchiveSet:
    """Members of a source's archives, by name; archives open lazily and stay open."""

    def __init__(self, src: SourceRoot, archives: list[str], *, strip_outer: bool = True):
        self.src = src
        self.archives = list(archives)
        self.strip_outer = strip_outer
        self._index: dict[str, tuple[str, str]] | None = None
        self._open: dict[str, zipfile.ZipFile | tarfile.TarFile] = {}

    @classmethod
    def from_list_file(cls, src: SourceRoot, rel: str, **kw) -> ArchiveSet:
        """The archives a side file lists, one name per line, relative to the side file's folder."""
        folder = str(Path(rel).parent)
        text = decode_text(src.annotation(rel).read_bytes(), rel)
        names = [line.strip() for line in text.splitlines() if line.strip()]
        return cls(src, [n if folder in ("", ".") else f"{folder}/{n}" for n in names], **kw)

    def _handle(self, rel: str):
        if rel not in self._open:
            path = self.src.annotation(rel)
            segments = split_segments(self.src, rel)
            if segments:  # name.z01 ... name.zip: a spanned archive (M4-Instruct's DreamSim)
                self._open[rel] = SplitZip(self.src, segments)
                return self._open[rel]
            try:
                if zipfile.is_zipfile(path):
                    self._open[rel] = zipfile.ZipFile(path)
                else:
                    self._open[rel] = tarfile.open(path, "r:")  # plain tar: random access by offset
            except (zipfile.BadZipFile, tarfile.TarError, OSError) as err:
                raise AnnotationFileError(rel, f"not a readable zip or uncompressed tar: {err}") from None
        return self._open[rel]

    def index(self) -> dict[str, tuple[str, str]]:
        """Member name (and name without an outer folder) → (archive, member)."""
        if self._index is None:
            self._index = {}
            for rel in self.archives:
                handle = self._handle(rel)
                if isinstance(handle, SplitZip):
                    names = handle.namelist()
                elif isinstance(handle, zipfile.ZipFile):
                    names = [i.filename for i in handle.infolist() if not i.is_dir()]
                else:
                    names = [m.name for m in handle.getmembers() if m.isfile()]
                for name in names:
                    self._index.setdefault(name, (rel, name))
                    if self.strip_outer and "/" in name:
                        self._index.setdefault(name.split("/", 1)[1], (rel, name))
        return self._index

    def __contains__(self, name: str) -> bool:
        return name in self.index()

    def read(self, name: str, what: str = "member") -> bytes:
        found = self.index().get(name)
        if found is None:
            raise MediaError(f"missing {what}: {name} (not in {', '.join(self.archives) or 'any archive'})",
                             reason="missing_media")  # fmt: skip
        rel, member = found
        handle = self._handle(rel)
        if isinstance(handle, SplitZip):
            try:
                return handle.read(member, MAX_MEMBER_BYTES)
            except (OSError, ValueError, zlib.error) as err:
                raise MediaError(f"{what} {name} in {rel}: unreadable: {err}") from None
        if isinstance(handle, zipfile.ZipFile):
            info = handle.getinfo(member)
            if info.file_size > MAX_MEMBER_BYTES:
                raise MediaError(f"{what} {name}: {info.file_size} bytes exceeds the member limit")
            try:
                return handle.read(member)
            except (zipfile.BadZipFile, OSError, EOFError) as err:
                raise MediaError(f"{what} {name} in {rel}: unreadable: {err}") from None
        info = handle.getmember(member)
        if info.size > MAX_MEMBER_BYTES:
            raise MediaError(f"{what} {name}: {info.size} bytes exceeds the member limit")
        fh = handle.extractfile(info)
        if fh is None:
            raise MediaError(f"{what} {name} in {rel} is not a regular file")
        return fh.read()

    def names(self, pattern: str = "*") -> list[str]:
        return sorted(n for n, (_, member) in self.index().items() if n == member and fnmatch.fnmatch(n, pattern))


def iter_tar_members(
    src: SourceRoot, rel: str, *, read: Callable[[str], bool] | None = None
) -> Iterator[tuple[str, bytes | None]]:
    """(name, bytes) of every regular file of a tar / tar.gz, streamed in archive order; with
    ``read``, only members it accepts are read (the others come as ``(name, None)``, their data
    skipped in the stream), so listing a tar.gz costs one pass without holding its members."""
    try:
        with tarfile.open(src.annotation(rel), "r|*") as tf:
            for info in tf:
                if not info.isfile():
                    continue
                if read is not None and not read(info.name):
                    yield info.name, None
                    continue
                if info.size > MAX_MEMBER_BYTES:
                    raise AnnotationFileError(rel, f"member {info.name}: {info.size} bytes exceeds the member limit")
                fh = tf.extractfile(info)
                yield info.name, fh.read() if fh else b""
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise AnnotationFileError(rel, f"unreadable tar archive: {err}") from None


def normalize_member(name: str) -> str:
    """A tar member name without a leading ``./`` (``tar -C dir .`` archives carry one)."""
    return name[2:] if name.startswith("./") else name


class TarStream:
    """Members of one tar / tar.gz, fetched by a forward cursor that is kept between calls.

    A tar.gz cannot be read at random. Callers that ask for members in archive order (records
    listed in that order, as work units keep them) cost one pass over the archive; asking for a
    member behind the cursor restarts the stream from the start (correct, only slower)."""

    def __init__(self, src: SourceRoot, rel: str):
        self.src, self.rel = src, rel
        self._cursor: Iterator[tuple[str, bytes | None]] | None = None
        self._wanted: set[str] = set()
        self.restarts = 0  # passes begun after the first

    def fetch(self, names: list[str]) -> dict[str, bytes]:
        """The bytes of ``names`` (normalized member names); a name not in the archive raises
        ``MediaError`` (``missing_media``)."""
        wanted, got = set(names), {}
        for attempt in range(2):
            if self._cursor is None or attempt:
                self.restarts += attempt
                self._cursor = iter_tar_members(self.src, self.rel, read=lambda n: normalize_member(n) in self._wanted)
            self._wanted = wanted - set(got)
            for name, data in self._cursor:
                key = normalize_member(name)
                if data is not None and key in wanted:
                    got[key] = data
                    if len(got) == len(wanted):
                        return got
            self._cursor = None  # reached the end: what is missing lay behind the cursor
        missing = sorted(wanted - set(got))
        raise MediaError(f"{self.rel}: member(s) {missing[:2]} not found", reason="missing_media")


class _MemberReader(Reader):
    @classmethod
    def option_names(cls):
        return ["pattern", "format"]

    def _parse(self, rel: str, name: str, data: bytes) -> Item:
        locator = f"member {name}"
        if self.options.get("format", "json") == "text":
            try:
                return Item(rel, locator, {"_member": name, "text": data.decode("utf-8")})
            except UnicodeDecodeError as err:
                return Item(rel, locator, None, f"{rel} {locator}: not valid UTF-8 ({err.reason})")
        try:
            obj = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
            return Item(rel, locator, None, f"{rel} {locator}: malformed JSON: {err}")
        return Item(
            rel, locator, {"_member": name, **obj} if isinstance(obj, dict) else {"_member": name, "_value": obj}
        )


class ZipMembers(_MemberReader):
    name = "zip_members"
    extensions = (".zip",)

    def read(self, src: SourceRoot, part: Part) -> Iterator[Item]:
        archives = ArchiveSet(src, [part.file], strip_outer=False)
        for name in archives.names(self.options.get("pattern", "*")):
            yield self._parse(part.file, name, archives.read(name))


class TarMembers(_MemberReader):
    name = "tar_members"
    extensions = (".tar", ".tar.gz", ".tgz")

    def read(self, src: SourceRoot, part: Part) -> Iterator[Item]:
        pattern = self.options.get("pattern", "*")
        for name, data in iter_tar_members(src, part.file):
            if fnmatch.fnmatch(name, pattern):
                yield self._parse(part.file, name, data)
