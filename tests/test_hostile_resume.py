"""Exactly-once means unchanged inputs (issue #10): a build is killed, an input it already read
changes, and ``--resume`` must redo what changed (and say which file) so that the result is
byte-identical to a fresh build of the changed inputs. Before the fix an edited sentence came out
stale, and a record inserted at the top of a file lost another record while the manifest still
reconciled."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from m4_pipeline.cli import main
from m4_pipeline.executor import run_build
from m4_pipeline.recipe import load_recipe
from m4_pipeline.synthetic import synthetic_image
from tests.test_resume_cluster import markers, shard_bytes, start_build, wait_for

pytestmark = pytest.mark.slow

RECIPE = """name: resume_edit
version: "1"
output: {shard_max_samples: 2, records_per_unit: 1}
dedup: {exact: true}
sources:
  - {name: nlvr2, adapter: nlvr2, path: nlvr2, params: {splits: [train, dev]}}
  - {name: llava_mix, adapter: llava_mix, path: llava_mix}
"""


@pytest.fixture
def corpus(miniatures, tmp_path):
    for name in ("nlvr2", "llava_mix"):
        shutil.copytree(miniatures / name, tmp_path / "sources" / name)
    (tmp_path / "recipe.yaml").write_text(RECIPE)
    return tmp_path


def killed_build(corpus: Path, out: Path, units: int = 4) -> list[dict]:
    """Start a build, SIGKILL it (driver and its Ray) after ``units`` finished units; their rows."""
    proc = start_build(corpus / "recipe.yaml", corpus / "sources", out, "--num-cpus", "1")
    wait_for(lambda: markers(out, "units") >= units, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "index.json").exists()
    rows = []
    for p in (out / "_work").glob("run-*/*.done.json"):
        outcome = p.with_name(p.name[: -len(".done.json")] + ".parquet")
        if outcome.is_file():  # a unit's marker (shard markers have none)
            rows += pq.read_table(outcome).to_pylist()
    return rows


def resume(corpus: Path, out: Path) -> int:
    return main(["build", str(corpus / "recipe.yaml"), "--sources", str(corpus / "sources"), "--out", str(out),
                 "-q", "--resume"])  # fmt: skip


def fresh(corpus: Path, out: Path) -> dict:
    return run_build(load_recipe(corpus / "recipe.yaml"), corpus / "sources", out, progress=False)


def shard_texts(out: Path) -> str:
    import webdataset as wds

    return "".join(json.dumps(json.loads(it["json"])) for p in sorted(out.glob("*.tar"))
                   for it in wds.WebDataset(str(p), shardshuffle=False))  # fmt: skip


def first_done(rows: list[dict], source: str, source_file: str) -> dict:
    done = [r for r in rows if r["source"] == source and r["source_file"] == source_file and r["status"] == "ok"]
    assert done, f"no finished unit of {source_file} before the kill"
    return done[0]


def test_a_sentence_edited_after_the_kill_is_redone(ray_session, corpus, tmp_path, caplog):
    out = tmp_path / "out"
    rows = killed_build(corpus, out)
    row = first_done(rows, "nlvr2", "data/train.json")
    ann = corpus / "sources" / "nlvr2" / "data" / "train.json"
    lines = ann.read_text().splitlines()
    n = int(row["locator"].split()[-1])
    record = json.loads(lines[n - 1])
    record["sentence"] = "An edited sentence after the kill."
    lines[n - 1] = json.dumps(record)
    ann.write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING, logger="m4_pipeline.executor"):
        assert resume(corpus, out) == 0
    assert "resume: nlvr2 changed since the interrupted run: data/train.json" in caplog.text
    reference = tmp_path / "reference"
    fresh(corpus, reference)
    assert shard_bytes(out) == shard_bytes(reference)
    assert "An edited sentence after the kill." in shard_texts(out)


def test_a_record_inserted_at_the_top_after_the_kill_loses_nothing(ray_session, corpus, tmp_path, caplog):
    out = tmp_path / "out"
    before = fresh(corpus, tmp_path / "before")
    killed_build(corpus, out)
    ann = corpus / "sources" / "nlvr2" / "data" / "train.json"
    lines = ann.read_text().splitlines()
    top = {**json.loads(lines[0]), "identifier": "train-100-0-7", "sentence": "A record inserted at the top."}
    ann.write_text("\n".join([json.dumps(top), *lines]) + "\n")
    with caplog.at_level(logging.WARNING, logger="m4_pipeline.executor"):
        assert resume(corpus, out) == 0
    assert "data/train.json" in caplog.text
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sources"]["nlvr2"]["read"] == before["sources"]["nlvr2"]["read"] + 1
    assert manifest["sources"]["nlvr2"]["written"] == before["sources"]["nlvr2"]["written"] + 1
    reference = tmp_path / "reference"
    fresh(corpus, reference)
    assert shard_bytes(out) == shard_bytes(reference)
    assert (out / "index.json").read_text() == (reference / "index.json").read_text()


def test_a_media_file_changed_after_the_kill_is_redone(ray_session, corpus, tmp_path, caplog):
    out = tmp_path / "out"
    rows = killed_build(corpus, out)
    row = first_done(rows, "nlvr2", "data/train.json")
    lines = (corpus / "sources" / "nlvr2" / "data" / "train.json").read_text().splitlines()
    record = json.loads(lines[int(row["locator"].split()[-1]) - 1])
    image = f"images/train/{record['directory']}/{record['identifier'].rsplit('-', 1)[0]}-img0.png"
    synthetic_image(4242, (320, 240)).save(corpus / "sources" / "nlvr2" / image, "PNG")
    with caplog.at_level(logging.WARNING, logger="m4_pipeline.executor"):
        assert resume(corpus, out) == 0
    assert f"resume: nlvr2 changed since the interrupted run: {image} (" in caplog.text
    reference = tmp_path / "reference"
    fresh(corpus, reference)
    assert shard_bytes(out) == shard_bytes(reference)
