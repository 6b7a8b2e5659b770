"""The output folder's rules (m4_pipeline/outdir.py) without Ray: what is ours, the lock, the run
file, fingerprints, atomic writes."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys

import pytest

from m4_pipeline.outdir import (
    LOCK_NAME,
    OutputError,
    OutputFolder,
    OutputLock,
    ResumeError,
    changed_files,
    fingerprints,
)
from m4_pipeline.writer import write_atomic

IDENTITY = {"recipe": "r", "recipe_sha256": "abc", "sources": "/src", "pipeline_version": "0"}


def previous_build(out, shards=("r-000000.tar",), files=("manifest.json",)):
    out.mkdir(parents=True, exist_ok=True)
    index = {"shards": [], "files": []}
    for name in shards:
        (out / name).write_bytes(b"tar" * 10)
        index["shards"].append({"name": name, "bytes": 30})
    for name in files:
        (out / name).write_text("{}")
        index["files"].append({"name": name, "bytes": None})
    (out / "index.json").write_text(json.dumps(index))


def test_a_fresh_build_removes_only_what_the_previous_index_lists(tmp_path):
    out = tmp_path / "out"
    previous_build(out)
    (out / "precious_backup.tar").write_bytes(b"mine")
    folder = OutputFolder(out)
    assert folder.foreign() == ["precious_backup.tar"]
    with pytest.raises(OutputError, match=r"holds files this tool did not write \(precious_backup.tar\)"):
        folder.check_free(resume=False, overwrite=False)
    with folder.held():
        run = folder.begin(IDENTITY, resume=False, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["_work", "precious_backup.tar"]
    assert run["replaced"] == ["index.json", "manifest.json", "r-000000.tar"]


def test_a_listed_shard_whose_size_changed_is_not_ours_any_more(tmp_path):
    out = tmp_path / "out"
    previous_build(out)
    (out / "r-000000.tar").write_bytes(b"replaced by the user")
    assert OutputFolder(out).foreign() == ["r-000000.tar"]


def test_an_index_naming_paths_outside_the_folder_is_ignored(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "victim.txt").write_text("x")
    (out / "index.json").write_text(json.dumps({"shards": [{"name": "../victim.txt", "bytes": 1}], "files": []}))
    with OutputFolder(out).held() as folder:
        folder.begin(IDENTITY, resume=False, overwrite=True)
    assert (tmp_path / "victim.txt").read_text() == "x"


def test_runs_have_their_own_staging_and_resume_checks_identity(tmp_path):
    out = tmp_path / "out"
    folder = OutputFolder(out)
    with folder.held():
        first = folder.begin(IDENTITY, resume=False, overwrite=False)
        staging = folder.staging(first)
    assert staging.name == f"run-{first['run_id']}"
    with folder.held():
        again = folder.begin(IDENTITY, resume=True, overwrite=False)
        assert again["run_id"] == first["run_id"]
        with pytest.raises(ResumeError, match="recipe_sha256 changed"):
            folder.begin({**IDENTITY, "recipe_sha256": "other"}, resume=True, overwrite=False)
        second = folder.begin(IDENTITY, resume=False, overwrite=False)  # a fresh build over the interrupted one
    assert second["run_id"] != first["run_id"] and not staging.exists()


def test_the_lock_names_its_holder_and_a_dead_holder_is_taken_over(tmp_path, caplog):
    out = tmp_path / "out"
    out.mkdir()
    lock = OutputLock(out)
    lock.acquire({"ray": "/tmp/session"})
    holder = json.loads((out / LOCK_NAME).read_text())
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname() and holder["ray"] == "/tmp/session"
    with pytest.raises(OutputError, match=f"being written by another build: pid {os.getpid()} on host"):
        OutputLock(out).acquire()
    with pytest.raises(OutputError, match="being written by another build"):
        OutputFolder(out).check_free(resume=False, overwrite=True)
    lock.release()
    assert not (out / LOCK_NAME).exists()
    # a build killed with SIGKILL leaves its lock file: the kernel dropped the lock with the process
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / LOCK_NAME).write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}))
    with caplog.at_level(logging.WARNING, logger="m4_pipeline.outdir"):
        with OutputFolder(out).held():
            pass
    assert f"taking over the stale lock of pid {int(dead.stdout)}" in caplog.text


def test_out_must_be_a_folder_we_may_write(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="exists and is not a folder"):
        OutputFolder(tmp_path / "file").check_usable()
    with pytest.raises(OutputError, match="is not a folder"):
        OutputFolder(tmp_path / "file" / "below").check_usable()
    OutputFolder(tmp_path / "new" / "deeper").check_usable()  # made later, under a writable parent


def test_fingerprints_see_content_for_annotations_and_size_or_mtime_for_media(tmp_path):
    (tmp_path / "a.json").write_text('[{"s": "one"}]')
    (tmp_path / "img.jpg").write_bytes(b"x" * 10)
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "1.jpg").write_bytes(b"y")
    recorded = fingerprints(tmp_path, {"a.json": "annotation", "img.jpg": "media", "frames": "media"})
    assert changed_files(tmp_path, recorded) == []
    os.utime(tmp_path / "a.json", ns=(1, 1))  # touched, same content: unchanged
    assert changed_files(tmp_path, recorded) == []
    (tmp_path / "a.json").write_text('[{"s": "two"}]')  # same size, other text
    (tmp_path / "frames" / "2.jpg").write_bytes(b"z")
    (tmp_path / "img.jpg").unlink()
    assert changed_files(tmp_path, recorded) == ["a.json (content changed)", "frames (folder content changed)",
                                                 "img.jpg (removed)"]  # fmt: skip


def test_write_atomic_never_leaves_a_truncated_file(tmp_path, monkeypatch):
    """A disk that fills up while index.json is written leaves the previous one (or none)."""
    target = tmp_path / "index.json"
    target.write_text('{"old": true}')

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(target, b'{"new": true}', tmp_dir=tmp_path)
    assert target.read_text() == '{"old": true}' and sorted(p.name for p in tmp_path.iterdir()) == ["index.json"]
