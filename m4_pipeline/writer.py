"""WebDataset tar writing: deterministic members, staging fragments, shards rotated by count and size.

A sample is ``<key>.json`` (the released record plus ``provenance``) followed by one member per
media item, ``<key>.<i>.<ext>``, in the order of the record's media list. Every member has fixed
metadata (mtime 0, owner 0/0, mode 0644), so the same samples give byte-identical tars.
Shards are written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .formats import to_shard_json
from .sample import Sample


def sample_members(sample: Sample) -> list[tuple[str, bytes]]:
    record = to_shard_json(sample)
    members = [(f"{sample.key}.json", dump_json(record))]
    # a video reference has no bytes: no member (the media keep their numbers)
    members += [(f"{sample.key}.{i}.{m.ext}", m.data) for i, m in enumerate(sample.media) if m.kind != "video"]
    return members


def dump_json(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def member_header(name: str, size: int) -> bytes:
    """A tar header with fixed metadata (mtime 0, owner 0/0, mode 0644): same name and size,
    same bytes."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")


def write_tar(
    path: Path, members: list[tuple[str, bytes]], *, durable: bool = True, tmp_dir: Path | None = None
) -> tuple[str, int]:
    """Write members to ``path`` atomically; return (sha256, size in bytes).

    The bytes are what ``tarfile`` writes in GNU format (headers, data padded to 512 bytes, two
    zero blocks, padding to a 10 KiB record), written directly and hashed on the way, which is
    faster than ``tarfile`` itself. The rename makes the file appear whole or not at all, even
    if the writer is killed; ``durable`` also fsyncs it first, so that a power loss cannot
    leave a renamed but empty file behind. ``tmp_dir`` (on the same file system) holds the
    temporary file instead of ``path``'s folder, so a killed writer leaves nothing there."""
    tmp = _temporary(path, tmp_dir)
    sha, size = hashlib.sha256(), 0
    try:
        with open(tmp, "wb") as fh:

            def put(block: bytes) -> None:
                nonlocal size
                sha.update(block)
                fh.write(block)
                size += len(block)

            for name, data in members:
                put(member_header(name, len(data)))
                put(data)
                if len(data) % tarfile.BLOCKSIZE:
                    put(b"\0" * (tarfile.BLOCKSIZE - len(data) % tarfile.BLOCKSIZE))
            put(b"\0" * (2 * tarfile.BLOCKSIZE))
            if size % tarfile.RECORDSIZE:
                put(b"\0" * (tarfile.RECORDSIZE - size % tarfile.RECORDSIZE))
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk or a failed rename leaves no half file behind
        raise
    return sha.hexdigest(), size


def write_atomic(path: Path, data: bytes, *, tmp_dir: Path | None = None) -> None:
    """Write a small file under a temporary name, then rename: readers see all of it or nothing
    (a disk that fills up leaves the previous file, or none, never a truncated one)."""
    write_lines(path, [data], tmp_dir=tmp_dir)


def write_lines(path: Path, lines: Iterable[bytes], *, tmp_dir: Path | None = None) -> int:
    """:func:`write_atomic` of a stream of byte strings (a report too large to join first);
    return the bytes written."""
    tmp = _temporary(path, tmp_dir)
    size = 0
    try:
        with open(tmp, "wb") as fh:
            for line in lines:
                fh.write(line)
                size += len(line)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return size


def _temporary(path: Path, tmp_dir: Path | None = None) -> Path:
    """A temporary name of the writer's own: a task retried while its first attempt still runs
    (or a worker orphaned by a killed driver) must not write into the same temporary file."""
    return (tmp_dir or path.parent) / f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class ShardPlan:
    index: int
    name: str
    entries: list[dict] = field(default_factory=list)  # outcome rows: key, fragment, members, nbytes, content
    nbytes: int = 0
    digest: str = ""  # what the shard will hold (see plan_digest): a resumed build keeps a shard only if equal


def plan_digest(plan: ShardPlan, num_samples: dict[str, int]) -> str:
    """A hash of everything that decides a shard's bytes: its samples' keys, member names and
    content hashes, and the values filled in at write time."""
    parts = [[e["key"], e["members"], e.get("content", ""), e.get("dedup")] for e in plan.entries]
    text = json.dumps([plan.name, parts, sorted(num_samples.items())], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class ShardPlanner:
    """Cut key-sorted entries into shards of at most ``max_samples`` samples and about
    ``max_bytes`` bytes (one sample larger than the limit gets a shard of its own), streaming:
    :meth:`add` yields each shard as soon as it is complete, :meth:`finish` the last one; only
    the shard being filled is in memory."""

    def __init__(self, *, prefix: str, max_samples: int, max_bytes: int):
        self.prefix, self.max_samples, self.max_bytes = prefix, max_samples, max_bytes
        self.current: ShardPlan | None = None
        self.count = 0
        self._last_key: str | None = None

    def add(self, entry: dict) -> Iterator[ShardPlan]:
        if self._last_key is not None and entry["key"] <= self._last_key:
            raise ValueError(f"entries must come sorted by key: {entry['key']!r} after {self._last_key!r}")
        self._last_key = entry["key"]
        cur = self.current
        full = cur is not None and (
            len(cur.entries) >= self.max_samples or (cur.entries and cur.nbytes + entry["nbytes"] > self.max_bytes)
        )
        if cur is None or full:
            if cur is not None:
                yield cur
            self.current = cur = ShardPlan(self.count, f"{self.prefix}-{self.count:06d}.tar")
            self.count += 1
        cur.entries.append(entry)
        cur.nbytes += entry["nbytes"]

    def finish(self) -> Iterator[ShardPlan]:
        if self.current is not None:
            yield self.current
            self.current = None


def plan_shards(entries: Iterable[dict], *, prefix: str, max_samples: int, max_bytes: int) -> list[ShardPlan]:
    """Every shard of key-sorted entries at once (:class:`ShardPlanner` streams the same cut)."""
    planner = ShardPlanner(prefix=prefix, max_samples=max_samples, max_bytes=max_bytes)
    return [shard for entry in entries for shard in planner.add(entry)] + list(planner.finish())


def write_shard(plan: ShardPlan, out_dir: Path, staging_dir: Path, num_samples: dict[str, int]) -> dict:
    """Copy the planned samples' members from their staging fragments into one shard.

    Two things are only known once every sample is built, so they are filled into the JSON
    member here: ``metadata.num_sample`` (written samples of that M4 ``metadata.dataset``) where
    the adapter left it empty, and ``provenance.dedup`` for a sample that others duplicate (the
    entry's ``dedup``).
    A ``<shard>.done.json`` marker in ``staging_dir`` follows the shard's rename.
    """
    from .paths import confined_output

    target = confined_output(out_dir, plan.name, "shard")
    members: list[tuple[str, bytes]] = []
    open_fragments: dict[str, tarfile.TarFile] = {}
    try:
        for entry in plan.entries:
            frag = entry["fragment"]
            tf = open_fragments.get(frag)
            if tf is None:
                tf = open_fragments[frag] = tarfile.open(staging_dir / frag, "r")
            for name in entry["members"]:
                data = tf.extractfile(name).read()
                if name.endswith(".json"):
                    data = _finalize_json(data, num_samples, entry.get("dedup"))
                members.append((name, data))
    finally:
        for tf in open_fragments.values():
            tf.close()
    sha, size = write_tar(target, members, tmp_dir=staging_dir)
    keys = [e["key"] for e in plan.entries]
    info = {"name": plan.name, "sha256": sha, "bytes": size, "samples": len(keys), "first_key": keys[0],
            "last_key": keys[-1], "plan": plan.digest}  # fmt: skip
    write_atomic(shard_marker(staging_dir, plan.name), json.dumps(info).encode())
    return info


def shard_marker(staging_dir: Path, name: str) -> Path:
    return staging_dir / f"{name}.done.json"


def completed_shard(out_dir: Path, staging_dir: Path, name: str, digest_of: Callable[[str], str]) -> dict | None:
    """The marker of shard ``name`` if a previous run finished it, planned the same content
    (``digest_of(name)``, asked only when there is a marker) and the shard on disk still matches."""
    marker, shard = shard_marker(staging_dir, name), out_dir / name
    if not (marker.is_file() and shard.is_file()):
        return None
    info = json.loads(marker.read_text())
    if info.get("plan") != digest_of(name) or file_sha256(shard) != info["sha256"]:
        return None
    return info


def _finalize_json(data: bytes, num_samples: dict[str, int], dedup: dict | None) -> bytes:
    record = json.loads(data)
    meta = record.get("metadata")
    changed = False
    if isinstance(meta, dict) and meta.get("num_sample", 0) is None:
        meta["num_sample"] = num_samples.get(meta.get("dataset"), 0)
        changed = True
    if dedup:
        record["provenance"]["dedup"] = dedup
        changed = True
    return dump_json(record) if changed else data
