"""The output folder of a build: who holds it, what in it is ours, and the run file.

A build writes only inside ``--out`` and removes only what it can prove it wrote:

- the files a previous build of this folder listed in its ``index.json`` (its shards and its
  ``files``), as long as they still have the size recorded there;
- the names an interrupted build of this folder planned to write (``_work/run.json``,
  ``outputs``), and that build's work folder ``_work``;
- the lock file :data:`LOCK_NAME`.

Everything else in the folder is *foreign*: a fresh build refuses to start next to it unless
``overwrite`` is given, and even then leaves it alone (only files with the names it writes are
replaced). A resumed build removes nothing.

One build at a time holds the folder: an exclusive ``flock`` on the lock file, which names the
holder (pid, host, start time, command). The kernel drops the lock when its holder dies, so a
lock left by a killed build is stale by construction; the next build says whose it was and
takes it over.

The run file (``_work/run.json``) names the run (a fresh ``run_id`` per build: staging names are
unique per build), what it builds (recipe and sources) and a fingerprint of every file its
listing read; each finished work unit records the files it read in its marker. A resume redoes
what changed since (:func:`changed_files`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import socket
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from .errors import BuildError

log = logging.getLogger(__name__)

LOCK_NAME = ".m4-build.lock"
WORK = "_work"
RUN_FILE = "run.json"
RUN_KIND = "m4-pipeline run"
HASH_LIMIT = 256 << 20  # annotation files up to this size are hashed whole; larger: head, tail, size, mtime


class OutputError(BuildError):
    """The output folder cannot be used: a file, not writable, foreign files, held by another build."""


class ResumeError(BuildError):
    """``--resume`` on an output folder that holds no run, or a run of another recipe or input."""


# --- fingerprints of what a build read ----------------------------------------------------------

_HASHES: dict[tuple, str] = {}  # (path, size, mtime_ns, inode) -> content hash, per process


def fingerprint(path: Path, kind: str) -> dict:
    """A file's fingerprint: size and mtime, plus its content hash for an annotation file (a
    media file: size and mtime only). A folder (of video frames): its entries' names, sizes and
    mtimes. A missing file: ``{"missing": True}``."""
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return {"missing": True}
    if path.is_dir():
        h = hashlib.sha256()
        for entry in sorted(os.scandir(path), key=lambda e: e.name):
            if entry.is_file(follow_symlinks=False):
                est = entry.stat(follow_symlinks=False)
                h.update(f"{entry.name}\0{est.st_size}\0{est.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
        return {"entries": h.hexdigest()}
    fp = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if kind == "annotation":
        fp["sha256"] = _content_hash(path, st)
    return fp


def _content_hash(path: Path, st: os.stat_result) -> str:
    key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            if st.st_size <= HASH_LIMIT:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            else:  # a huge archive: its ends plus size and mtime (recorded beside)
                h.update(fh.read(4 << 20))
                fh.seek(-(4 << 20), os.SEEK_END)
                h.update(fh.read())
                h.update(f"partial:{st.st_size}:{st.st_mtime_ns}".encode())
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def fingerprints(root: Path, reads: dict[str, str]) -> dict[str, dict]:
    """``{rel: fingerprint}`` of the files a :meth:`SourceRoot.recording` noted."""
    return {rel: {"kind": kind, **fingerprint(root / rel, kind)} for rel, kind in sorted(reads.items())}


def same_file(old: dict, new: dict) -> bool:
    old, new = {k: v for k, v in old.items() if k != "kind"}, {k: v for k, v in new.items() if k != "kind"}
    if old.get("missing") or new.get("missing") or "entries" in old:
        return old == new
    if "sha256" in old:  # an annotation: its content (a touch alone changes nothing)
        return old.get("size") == new.get("size") and old.get("sha256") == new.get("sha256")
    return old.get("size") == new.get("size") and old.get("mtime_ns") == new.get("mtime_ns")


def changed_files(root: Path, recorded: dict[str, dict]) -> list[str]:
    """The recorded files of a source (under ``root``) that differ now, each with what changed."""
    out = []
    for rel, old in sorted(recorded.items()):
        new = fingerprint(root / rel, old.get("kind", "media"))
        if not same_file(old, new):
            out.append(f"{rel} ({_what_changed(old, new)})")
    return out


def _what_changed(old: dict, new: dict) -> str:
    if new.get("missing"):
        return "removed"
    if old.get("missing"):
        return "created"
    if "entries" in old:
        return "folder content changed"
    if old.get("size") != new.get("size"):
        return f"size {old.get('size')} -> {new.get('size')}"
    return "content changed" if "sha256" in old else "modified"


# --- the lock -----------------------------------------------------------------------------------


def _holder() -> dict:
    return {"pid": os.getpid(), "pgid": os.getpgid(0), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv)[:300]}  # fmt: skip


def _read_holder(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.read(fd, 1 << 16)
        holder = json.loads(data) if data.strip() else {}
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}


def _pid_alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _describe(holder: dict) -> str:
    if not holder:
        return "an unknown process"
    return (f"pid {holder.get('pid')} on host {holder.get('host')} since {holder.get('started')} "
            f"({holder.get('command', '?')})")  # fmt: skip


class OutputLock:
    """An exclusive lock on an output folder, held while the build runs."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.path = folder / LOCK_NAME
        self.fd: int | None = None

    def acquire(self, info: dict | None = None) -> None:
        """Take the lock or raise :class:`OutputError` naming its holder; ``info`` is recorded
        beside pid, process group, host and command (the build's Ray, for cleaning up after a kill)."""
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except PermissionError as err:
                raise OutputError(f"cannot write to {self.folder}: {err.strerror}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise OutputError(
                    f"{self.folder} is being written by another build: {_describe(holder)}; wait for it to finish "
                    f"(lock file {self.path})"
                ) from None
            try:  # the previous holder may have removed the file between our open and our lock
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            previous = _read_holder(fd)
            if previous.get("host") == socket.gethostname() and previous.get("pid") != os.getpid():
                if _pid_alive(previous.get("pid")) and _is_m4(previous.get("pid")):
                    os.close(fd)  # a file system without flock: the pid is the only evidence
                    raise OutputError(f"{self.folder} is being written by another build: {_describe(previous)} "
                                      f"(lock file {self.path})")  # fmt: skip
            if previous:
                log.warning("%s: taking over the stale lock of %s (that build is gone)", self.folder,
                            _describe(previous))  # fmt: skip
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, json.dumps({**_holder(), **(info or {})}).encode())
            os.fsync(fd)
            self.fd = fd
            return
        raise OutputError(f"could not lock {self.folder}: the lock file keeps changing")

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            if os.stat(self.path).st_ino == os.fstat(self.fd).st_ino:
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self.fd)
        self.fd = None

    def probe(self) -> None:
        """Fail now if another build holds the folder (takes nothing)."""
        if not self.path.is_file():
            return
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            raise OutputError(
                f"{self.folder} is being written by another build: {_describe(holder)}; wait for it to finish "
                f"(lock file {self.path})"
            ) from None
        finally:
            os.close(fd)


def _is_m4(pid: int) -> bool:
    """Whether a live pid on this host looks like a build (its command line names m4_pipeline or m4)."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return True  # cannot tell: assume it is
    return "m4" in cmd


# --- ownership ----------------------------------------------------------------------------------


def _plain_name(name) -> bool:
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name


class OutputFolder:
    """``--out`` of one build: checks, lock, what is ours, the run file."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder).expanduser().absolute()
        self.work = self.folder / WORK
        self.lock = OutputLock(self.folder)

    # --- checks that write nothing ---------------------------------------------------------------
    def check_usable(self) -> None:
        """--out must be a folder (or not exist yet, under a writable parent) we may write to."""
        out = self.folder
        if out.exists() and not out.is_dir():
            raise OutputError(f"--out {out} exists and is not a folder")
        probe = out
        while not probe.exists():
            if probe.parent == probe:
                break
            probe = probe.parent
        if not probe.is_dir():
            raise OutputError(f"--out {out}: {probe} is not a folder")
        if not os.access(probe, os.W_OK | os.X_OK):
            raise OutputError(f"cannot write to {probe}: permission denied (--out {out})")

    def previous_outputs(self) -> dict[str, str]:
        """Entries of the folder a previous build of it provably wrote: ``{name: why}``."""
        ours: dict[str, str] = {}
        index = _load_json(self.folder / "index.json")
        if isinstance(index, dict) and isinstance(index.get("shards"), list):
            listed = [*index.get("shards", []), *index.get("files", [])]
            for entry in listed:
                name = entry.get("name") if isinstance(entry, dict) else None
                if not _plain_name(name):
                    continue
                path = self.folder / name
                if path.is_symlink() or not path.exists():
                    continue
                if entry.get("bytes") is None or (path.is_file() and path.stat().st_size == entry.get("bytes")):
                    ours[name] = "listed in index.json"
            if (self.folder / "index.json").is_file() and ours:
                ours["index.json"] = "the previous build's index"
        run = self.run_file()
        if run is not None:
            ours[WORK] = "the work folder of an interrupted build"
            for name in run.get("outputs", []):
                if _plain_name(name) and (self.folder / name).exists():
                    ours.setdefault(name, "planned by the interrupted build")
        elif self.work.is_dir() and not any(self.work.iterdir()):
            ours[WORK] = "an empty work folder"
        if self.lock.path.is_file():
            ours[LOCK_NAME] = "the lock file"
        return ours

    def foreign(self) -> list[str]:
        """Entries of the folder that are not provably ours, sorted."""
        if not self.folder.is_dir():
            return []
        ours = self.previous_outputs()
        return sorted(p.name for p in self.folder.iterdir() if p.name not in ours)

    def check_free(self, *, resume: bool, overwrite: bool) -> None:
        """Refuse a folder another build holds, or (fresh build, no overwrite) one with foreign files."""
        if self.lock.fd is None:
            self.lock.probe()
        if resume:
            if self.run_file() is None:
                raise ResumeError(f"nothing to resume in {self.folder}: no interrupted build there")
            return
        if self.work.exists() and self.run_file() is None and any(self.work.iterdir()):
            raise OutputError(f"{self.work} is not a work folder of this tool: move it away")
        foreign = self.foreign()
        if foreign and not overwrite:
            shown = ", ".join(foreign[:8]) + (f" and {len(foreign) - 8} more" if len(foreign) > 8 else "")
            raise OutputError(
                f"--out {self.folder} holds files this tool did not write ({shown}); choose an empty folder, "
                f"or pass --overwrite to write beside them (they are never deleted)"
            )

    # --- the run -----------------------------------------------------------------------------------
    def run_file(self) -> dict | None:
        run = _load_json(self.work / RUN_FILE)
        if isinstance(run, dict) and (run.get("kind") == RUN_KIND or "recipe_sha256" in run):
            return run
        return None

    @contextmanager
    def held(self, info: dict | None = None):
        """Create the folder and hold its lock for the ``with`` block."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except (PermissionError, FileExistsError, NotADirectoryError) as err:
            raise OutputError(f"cannot create --out {self.folder}: {err.strerror}") from None
        self.lock.acquire(info)
        try:
            yield self
        finally:
            self.lock.release()

    def begin(self, identity: dict, *, resume: bool, overwrite: bool) -> dict:
        """Start a fresh run (removing a previous build's outputs) or continue the interrupted one;
        return the run file. Call with the lock held."""
        self.check_free(resume=resume, overwrite=overwrite)
        if resume:
            previous = self.run_file()
            changed = sorted(k for k in identity if previous.get(k) != identity[k])
            if changed:
                raise ResumeError(
                    f"cannot resume {self.folder}: {', '.join(changed)} changed since the interrupted run"
                )
            if "run_id" not in previous:  # a run file of an older version
                previous = {**previous, "kind": RUN_KIND, "run_id": uuid.uuid4().hex[:12], "outputs": []}
                self.write_run(previous)
            return previous
        previous = self.previous_outputs()
        for name in previous:
            if name == LOCK_NAME:
                continue
            path = self.folder / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        run = {"kind": RUN_KIND, **identity, "run_id": uuid.uuid4().hex[:12], "inputs": {}, "outputs": [],
               "replaced": sorted(n for n in previous if n not in (LOCK_NAME, WORK))}  # fmt: skip
        self.work.mkdir()
        self.write_run(run)
        return run

    def staging(self, run: dict) -> Path:
        """The run's own staging folder (fragments, markers, temporaries)."""
        path = self.work / f"run-{run['run_id']}"
        path.mkdir(exist_ok=True)
        return path

    def write_run(self, run: dict) -> None:
        from .writer import write_atomic

        write_atomic(self.work / RUN_FILE, json.dumps(run, indent=1, sort_keys=True).encode(), tmp_dir=self.work)

    def plan_outputs(self, run: dict, names: list[str]) -> None:
        """Record the names this run will write, before writing any (so a later build may remove them)."""
        names = sorted(set(run.get("outputs", [])) | set(names))
        if names != run.get("outputs"):
            run["outputs"] = names
            self.write_run(run)

    def remove_replaced(self, run: dict) -> None:
        """Remove again what the previous build wrote and this one did not rewrite (a worker
        orphaned by a killed build may still have renamed a shard into place after we began)."""
        for name in set(run.get("replaced", [])) - set(run.get("outputs", [])):
            if _plain_name(name) and (self.folder / name).is_file():
                (self.folder / name).unlink(missing_ok=True)

    def finish(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)


def _load_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
