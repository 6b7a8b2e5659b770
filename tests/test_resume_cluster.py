"""Exactly-once resume after SIGKILL of the driver, and a build on a real two-node Ray cluster
whose worker node is killed mid-run. Both must give shards byte-identical to a plain run."""

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from m4_pipeline.cli import main
from m4_pipeline.executor import ResumeError, run_build

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
RAY = str(Path(sys.executable).parent / "ray")


@pytest.fixture(scope="module")
def small_shards_recipe(demo_recipe, tmp_path_factory):
    """The demo recipe with 2 samples per shard, so that a kill can land between shards."""
    path = tmp_path_factory.mktemp("recipe") / "resume.yaml"
    text = (ROOT / "recipes" / "demo.yaml").read_text().replace("shard_max_samples: 16", "shard_max_samples: 2")
    path.write_text(text.replace("name: demo", "name: resume"))
    return path


@pytest.fixture(scope="module")
def reference(ray_session, miniatures, small_shards_recipe, tmp_path_factory):
    from m4_pipeline.recipe import load_recipe

    out = tmp_path_factory.mktemp("reference")
    run_build(load_recipe(small_shards_recipe), miniatures, out, progress=False)
    return out


def shard_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.tar"))}


def markers(out: Path, kind: str) -> int:
    work = out / "_work"
    if not work.is_dir():
        return 0
    names = [p.name for p in work.glob("*.done.json")]
    return sum(n.endswith(".tar.done.json") == (kind == "shards") for n in names)


def start_build(recipe: Path, sources: Path, out: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "m4_pipeline.cli", "build", str(recipe), "--sources", str(sources),
           "--out", str(out), "-q", *extra]  # fmt: skip
    return subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_for(condition, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(
                f"build ended (rc {proc.returncode}) before the kill point: {proc.stdout.read()[-2000:]}"
            )
        if time.time() > deadline:
            raise AssertionError("kill point not reached in time")
        time.sleep(0.02)


@pytest.mark.parametrize("kind,count", [("units", 1), ("units", 8), ("shards", 3)])
def test_sigkill_then_resume_is_byte_identical(reference, miniatures, small_shards_recipe, tmp_path, kind, count):
    out = tmp_path / "out"
    proc = start_build(small_shards_recipe, miniatures, out, "--num-cpus", "2")
    t0 = time.time()
    wait_for(lambda: markers(out, kind) >= count, proc)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray it started, at once
    proc.wait()
    killed_after = time.time() - t0
    assert not (out / "index.json").exists()
    done_before = markers(out, "units"), markers(out, "shards")
    t0 = time.time()
    assert main(["build", str(small_shards_recipe), "--sources", str(miniatures), "--out", str(out), "-q",
                 "--resume"]) == 0  # fmt: skip
    print(
        f"killed at {kind}>={count} after {killed_after:.1f} s with {done_before} (units, shards) done; "
        f"resume took {time.time() - t0:.1f} s"
    )
    assert shard_bytes(out) == shard_bytes(reference)
    for name in ("index.json", "quarantine.jsonl", "duplicates.jsonl"):
        assert (out / name).read_text() == (reference / name).read_text()
    assert json.loads((out / "manifest.json").read_text())["totals"] == json.loads(
        (reference / "manifest.json").read_text())["totals"]  # fmt: skip
    assert not (out / "_work").exists() and not list(out.glob("*.tmp"))


def test_resume_refuses_another_recipe_or_nothing(ray_session, miniatures, demo_recipe, tmp_path):
    with pytest.raises(ResumeError, match="nothing to resume"):
        run_build(demo_recipe, miniatures, tmp_path / "empty", resume=True, progress=False)
    out = tmp_path / "out"
    (out / "_work").mkdir(parents=True)
    (out / "_work" / "run.json").write_text(json.dumps({"recipe": "demo", "recipe_sha256": "other"}))
    with pytest.raises(ResumeError, match="recipe_sha256"):
        run_build(demo_recipe, miniatures, out, resume=True, progress=False)


def test_same_output_with_one_worker(demo_build, miniatures, demo_recipe, tmp_path):
    out, _ = demo_build
    recipe = dataclasses.replace(demo_recipe, output=dataclasses.replace(demo_recipe.output, records_per_unit=7))
    run_build(recipe, miniatures, tmp_path / "one", max_workers=1, progress=False)
    assert shard_bytes(tmp_path / "one") == shard_bytes(out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_nodes(address: str) -> int:
    proc = subprocess.run([RAY, "status", f"--address={address}"], capture_output=True, text=True, timeout=60)
    return proc.stdout.count(" node_") if proc.returncode == 0 else 0


def test_two_node_cluster_survives_losing_its_worker_node(reference, miniatures, small_shards_recipe, tmp_path):
    port = free_port()
    address = f"127.0.0.1:{port}"
    temp = tempfile.mkdtemp(prefix="/tmp/m4c-")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--num-cpus=1", "--block", "--disable-usage-stats"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    head_cmd = [RAY, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--include-dashboard=false",
                f"--temp-dir={temp}", *common]  # fmt: skip
    head = subprocess.Popen(head_cmd, start_new_session=True, env=env, **quiet)
    worker = None
    try:
        deadline = time.time() + 90
        while ray_nodes(address) < 1:
            assert time.time() < deadline, "head node did not start"
            time.sleep(1)
        worker_cmd = [RAY, "start", f"--address={address}", "--node-ip-address=127.0.0.1", *common]
        worker = subprocess.Popen(worker_cmd, start_new_session=True, env=env, **quiet)
        while ray_nodes(address) < 2:
            assert time.time() < deadline, "worker node did not join"
            time.sleep(1)
        out = tmp_path / "out"
        build = start_build(small_shards_recipe, miniatures, out, "--ray-address", address)
        wait_for(lambda: markers(out, "units") >= 3, build)
        os.killpg(worker.pid, signal.SIGKILL)  # the worker node: its raylet and its workers
        worker.wait()
        rc = build.wait(timeout=600)
        log = build.stdout.read().decode(errors="replace")
        assert rc == 0, log[-3000:]
        assert shard_bytes(out) == shard_bytes(reference)
        assert (out / "index.json").read_text() == (reference / "index.json").read_text()
    finally:
        for proc in (worker, head):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
