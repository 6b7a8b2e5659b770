"""Source-root confinement: the one way a path named by an annotation becomes a file.

Annotations are untrusted input. A path they name is resolved under the source's root and
refused when it is absolute, has a ``..`` component, or whose real path leaves the root (a
symlink pointing outside). By default no symlink is followed at all; ``symlinks="inside"``
(a recipe option) follows those that stay inside the root. A refused path raises
:class:`UnsafePathError`, which quarantines the record with reason ``unsafe_path`` and the
offending path in the detail. Every adapter and reader opens source files through a
:class:`SourceRoot`; nothing else opens them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO

from .errors import BuildError, MediaError, SourceError

SYMLINK_POLICIES = ("refuse", "inside")


class UnsafePathError(SourceError):
    """An annotation named a path outside its source root (absolute, ``..`` or a symlink escape)."""

    default_reason = "unsafe_path"


class SourceRoot:
    """A folder of one source; every read is confined to it.

    ``rel`` arguments are the relative, ``/``-separated paths an annotation names.
    """

    def __init__(self, root: str | Path, *, symlinks: str = "refuse"):
        if symlinks not in SYMLINK_POLICIES:
            raise ValueError(f"symlinks {symlinks!r} is not one of {', '.join(SYMLINK_POLICIES)}")
        self.root = Path(root).resolve()  # the root itself may be reached through a link
        self.symlinks = symlinks
        self._reads: dict[str, str] | None = None  # see recording()

    def __repr__(self) -> str:
        return f"SourceRoot({str(self.root)!r})"

    # --- the one check --------------------------------------------------------------------------
    def path(self, rel: str | os.PathLike, what: str = "path") -> Path:
        """The confined absolute path for ``rel`` (which need not exist), to be read."""
        path = self._confine(rel, what)
        self._note(path, "media")
        return path

    def _confine(self, rel: str | os.PathLike, what: str = "path") -> Path:
        if not isinstance(rel, (str, os.PathLike)) or isinstance(rel, bytes):
            raise SourceError(
                reason="invalid_annotation", message=f"{what}: expected a path string, got {type(rel).__name__}"
            )
        text = os.fspath(rel)
        if not text or "\x00" in text:
            raise UnsafePathError(f"{what}: empty path or NUL byte in {text!r}")
        if text.startswith(("/", "\\")) or PurePosixPath(text).is_absolute() or (len(text) > 1 and text[1] == ":"):
            raise UnsafePathError(f"{what}: absolute path {text!r} refused (paths must be relative to the source)")
        parts = [p for p in text.replace("\\", "/").split("/") if p not in ("", ".")]
        if ".." in parts:
            raise UnsafePathError(f"{what}: path {text!r} has a '..' component")
        current = self.root
        for part in parts:
            current = current / part
            if current.is_symlink():
                if self.symlinks == "refuse":
                    raise UnsafePathError(f"{what}: {text!r} goes through a symlink ({part}); symlinks are refused")
                real = current.resolve()
                if not real.is_relative_to(self.root):
                    raise UnsafePathError(f"{what}: {text!r} is a symlink leaving the source root")
                current = real
        return current

    # --- what was read (for resume fingerprints) -----------------------------------------------
    @contextmanager
    def recording(self) -> Iterator[dict[str, str]]:
        """Note every file or folder resolved for reading while inside: yields ``{rel: kind}``,
        kind ``"annotation"`` (read through :meth:`annotation`) or ``"media"``. Probes
        (``exists``, ``is_file``, ``is_dir``, ``glob``) are not reads."""
        previous, self._reads = self._reads, {}
        try:
            yield self._reads
        finally:
            reads, self._reads = self._reads, previous
            if previous is not None:
                for rel, kind in reads.items():
                    if previous.get(rel) != "annotation":
                        previous[rel] = kind

    def _note(self, path: Path, kind: str) -> None:
        if self._reads is not None and path.is_relative_to(self.root):
            rel = path.relative_to(self.root).as_posix()
            if self._reads.get(rel) != "annotation":
                self._reads[rel] = kind

    # --- reads ----------------------------------------------------------------------------------
    def exists(self, rel: str) -> bool:
        return self._confine(rel).exists()

    def is_file(self, rel: str) -> bool:
        return self._confine(rel).is_file()

    def is_dir(self, rel: str) -> bool:
        return self._confine(rel).is_dir()

    def file(self, rel: str, what: str = "file") -> Path:
        """An existing media file (a missing one quarantines the record as ``missing_media``)."""
        path = self.path(rel, what)
        if not path.is_file():
            raise MediaError(f"missing {what}: {rel}", reason="missing_media")
        return path

    def folder(self, rel: str, what: str = "folder") -> Path:
        path = self.path(rel, what)
        if not path.is_dir():
            raise MediaError(f"missing {what}: {rel}", reason="missing_media")
        return path

    def annotation(self, rel: str) -> Path:
        """An annotation or side file of the source: a missing or unsafe one is a configuration
        fault that stops the build (it is not a record), so it raises ``AnnotationFileError``."""
        try:
            path = self._confine(rel, "annotation file")
        except SourceError as err:
            raise AnnotationFileError(rel, str(err)) from None
        if not path.is_file():
            raise AnnotationFileError(rel, f"annotation file not found under {self.root}")
        self._note(path, "annotation")
        return path

    def open(self, rel: str, mode: str = "rb", what: str = "file") -> IO:
        if any(c in mode for c in "wax+"):
            raise ValueError("a SourceRoot is read-only")
        return open(self.file(rel, what), mode)

    def read_bytes(self, rel: str, what: str = "file") -> bytes:
        return self.file(rel, what).read_bytes()

    def glob(self, pattern: str) -> list[str]:
        """Relative paths of the files matching ``pattern``, sorted; entries whose real path leaves
        the root (or any symlink, when symlinks are refused) are left out."""
        out = []
        for p in self.root.glob(pattern):
            rel = p.relative_to(self.root).as_posix()
            try:
                if self._confine(rel).is_file():
                    out.append(rel)
            except SourceError:
                continue
        return sorted(out)

    def walk_files(self, rel: str = ".") -> Iterator[str]:
        """Every file under ``rel`` (no symlinks followed), as sorted relative paths."""
        base = self._confine(rel)
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(filenames):
                p = Path(dirpath) / name
                if not p.is_symlink():
                    yield p.relative_to(self.root).as_posix()


class AnnotationFileError(BuildError):
    """An annotation or side file that cannot be read: stops the build with one line naming it."""

    def __init__(self, rel: str, message: str, position: str = ""):
        self.rel, self.position = rel, position
        where = f"{rel} {position}".strip()
        super().__init__(f"{where}: {message}")


def safe_relpath(rel: str, what: str = "path") -> str:
    """``rel`` checked as a relative path with no ``..`` (for paths that are written, not read)."""
    text = str(rel)
    parts = [p for p in text.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or text.startswith(("/", "\\")) or ".." in parts or "\x00" in text:
        raise UnsafePathError(f"{what}: {text!r} is not a safe relative path")
    return "/".join(parts)


def confined_output(out_dir: str | Path, rel: str, what: str = "output") -> Path:
    """``out_dir / rel`` for a file this tool writes, refused unless it stays inside ``out_dir``."""
    out = Path(out_dir).resolve()
    target = (out / safe_relpath(rel, what)).resolve()
    if not target.is_relative_to(out):
        raise UnsafePathError(f"{what}: {rel!r} would be written outside {out}")
    return target
