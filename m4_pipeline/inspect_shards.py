"""Reading shards back with the ``webdataset`` library, and validating them."""

from __future__ import annotations

import json
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path

from .formats import FormatError, from_shard_json
from .sample import Sample
from .validate import validate_sample
from .writer import file_sha256

_MEDIA_FIELD = re.compile(r"^(\d+)\.[A-Za-z0-9]+$")


def shard_paths(path: str | Path) -> list[Path]:
    path = Path(path)
    if path.is_dir():
        paths = sorted(path.glob("*.tar"))
        if not paths:
            raise FileNotFoundError(f"no .tar shards in {path}")
        return paths
    if not path.is_file():
        raise FileNotFoundError(f"{path} is neither a shard nor a folder of shards")
    return [path]


def iter_samples(paths: list[Path]) -> Iterator[tuple[str, Sample | None, str | None]]:
    """(shard name, sample, error) for each sample in the shards, in order; no pickle decoding."""
    import webdataset as wds

    ds = wds.WebDataset([str(p) for p in paths], shardshuffle=False, empty_check=False)
    for item in ds:
        shard = Path(item.get("__url__", "")).name
        key = item["__key__"]
        if "json" not in item:
            yield shard, None, f"{key}: no {key}.json member"
            continue
        media = dict(sorted((int(m.group(1)), v) for k, v in item.items() if (m := _MEDIA_FIELD.match(k))))
        try:
            record = json.loads(item["json"])
            described = (record.get("provenance") or {}).get("media") or []
            sample = from_shard_json(record, key, [media.get(i, b"") for i in range(len(described))])
        except (json.JSONDecodeError, FormatError, TypeError, UnicodeDecodeError, AttributeError) as err:
            yield shard, None, str(err) if str(err).startswith(f"{key}:") else f"{key}: {err}"
            continue
        expected = [i for i, m in enumerate(sample.media) if m.kind != "video"]  # references have no member
        if sorted(media) != expected:
            yield shard, sample, f"{key}: media members {sorted(media)} do not match its described media {expected}"
            continue
        yield shard, sample, None


def shard_problem(path: Path) -> str | None:
    """Why a file is not a complete tar shard (unreadable, garbage, truncated), or None."""
    try:
        with tarfile.open(path, "r:") as tf:
            for member in tf:
                if member.isfile():
                    fh = tf.extractfile(member)
                    while fh.read(1 << 20):
                        pass
            end = tf.offset
        with open(path, "rb") as fh:
            fh.seek(end)
            tail = fh.read(2 * tarfile.BLOCKSIZE)
    except (tarfile.TarError, EOFError, OSError) as err:
        return f"{path.name}: not a readable tar shard ({str(err).splitlines()[0] if str(err) else type(err).__name__})"
    if len(tail) < 2 * tarfile.BLOCKSIZE or tail.strip(b"\0"):
        return f"{path.name}: truncated (no end-of-archive marker after its last member, at byte {end})"
    return None


def validate_shards(path: str | Path, *, progress: bool = False) -> dict:
    """Validate every sample against the template, each shard as a whole (a garbage or truncated
    file is a problem, not a crash), and a build folder against its ``index.json`` (missing,
    unreadable, a shard missing or not listed, a sha256 that differs)."""
    from tqdm import tqdm

    path = Path(path)
    index_file = path / "index.json"
    problems: list[str] = []
    index = None
    if path.is_dir():
        if not index_file.is_file():
            problems.append("index.json: missing (the build did not finish, or this is not a build folder)")
        else:
            try:
                index = {s["name"]: s for s in json.loads(index_file.read_text())["shards"]}
            except (ValueError, KeyError, TypeError) as err:
                problems.append(f"index.json: unreadable ({type(err).__name__}: {err})")
        paths = sorted(path.glob("*.tar"))
        if not paths and index is None:
            raise FileNotFoundError(f"no .tar shards in {path}")
    else:
        paths = shard_paths(path)
    count = 0
    for shard in tqdm(paths, desc="validate", unit="shard", disable=not progress):
        broken = shard_problem(shard)
        if broken:
            problems.append(broken)
            continue
        for _, sample, error in iter_samples([shard]):
            count += 1
            if error:
                problems.append(f"{shard.name}: {error}")
            if sample is not None:
                problems += [str(p) for p in validate_sample(sample)]
    if index is not None:
        on_disk = {p.name for p in paths}
        for name in sorted(set(index) ^ on_disk):
            problems.append(f"{name}: {'listed in index.json but missing' if name in index else 'not in index.json'}")
        for p in paths:
            if p.name in index and file_sha256(p) != index[p.name].get("sha256"):
                problems.append(f"{p.name}: sha256 differs from index.json")
    return {"shards": len(paths), "samples": count, "problems": problems}
