"""Exactly-once resume after SIGKILL of the driver, and a build on a real two-node Ray cluster
(token authentication on, as ``ray start --head`` of the pinned Ray has it) whose worker node is
killed mid-run. Both must give shards byte-identical to a plain run."""

import dataclasses
import json
import os
import secrets
import shutil
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
    names = [p.name for p in work.glob("run-*/*.done.json")]
    return sum(n.endswith(".tar.done.json") == (kind == "shards") for n in names)


def start_build(recipe: Path, sources: Path, out: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "m4_pipeline.cli", "build", str(recipe), "--sources", str(sources),
           "--out", str(out), "-q", *extra]  # fmt: skip
    return subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=env)  # fmt: skip


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


def test_sigkill_of_the_driver_alone_then_the_next_builds(reference, miniatures, small_shards_recipe, tmp_path):
    """Only the driver is killed: its local Ray's agents and workers outlive it for a while. The
    next build (a resume, then a fresh one into the same folder) must not be disturbed: it takes
    over the stale lock, ignores the orphans' staging, and gives the reference bytes."""
    out = tmp_path / "out"
    proc = start_build(small_shards_recipe, miniatures, out, "--num-cpus", "2")
    try:
        wait_for(lambda: markers(out, "units") >= 4, proc)
        os.kill(proc.pid, signal.SIGKILL)  # the driver only: its Ray processes stay behind
        proc.wait()
        lock = json.loads((out / ".m4-build.lock").read_text())
        assert lock["pid"] == lock["pgid"] == proc.pid and lock["ray"].startswith("/tmp")
        assert in_group(proc.pid), "no Ray process outlived the driver: nothing was tested"
        argv = ["build", str(small_shards_recipe), "--sources", str(miniatures), "--out", str(out), "-q"]
        assert main([*argv, "--resume"]) == 0
        assert shard_bytes(out) == shard_bytes(reference)
        assert main(argv) == 0  # a fresh build over its own previous output: no --overwrite needed
        assert shard_bytes(out) == shard_bytes(reference)
        assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in reference.iterdir())
        # the README's clean-up: the process group the lock file names
        os.killpg(lock["pgid"], signal.SIGTERM)
        deadline = time.time() + 60
        while in_group(lock["pgid"]):
            assert time.time() < deadline, f"left behind: {in_group(lock['pgid'])}"
            time.sleep(0.5)
    finally:
        if in_group(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)


def in_group(pgid: int) -> list[str]:
    """The live (not zombie) processes of a process group, by name."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, rest = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
        if int(rest[2]) == pgid and rest[0] != "Z":
            out.append(name)
    return out


def test_two_builds_into_one_folder_the_second_is_refused(miniatures, small_shards_recipe, tmp_path, capsys):
    out = tmp_path / "out"
    proc = start_build(small_shards_recipe, miniatures, out, "--num-cpus", "1")
    try:
        wait_for(lambda: (out / ".m4-build.lock").is_file() and (out / ".m4-build.lock").stat().st_size > 0, proc)
        argv = ["build", str(small_shards_recipe), "--sources", str(miniatures), "--out", str(out), "-q"]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"being written by another build: pid {proc.pid} on host {socket.gethostname()}" in err
        assert "Traceback" not in err
        assert proc.wait(timeout=600) == 0, proc.stdout.read()[-2000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_same_output_with_one_worker(demo_build, miniatures, demo_recipe, tmp_path):
    out, _ = demo_build
    recipe = dataclasses.replace(demo_recipe, output=dataclasses.replace(demo_recipe.output, records_per_unit=7))
    run_build(recipe, miniatures, tmp_path / "one", max_workers=1, progress=False)
    assert shard_bytes(tmp_path / "one") == shard_bytes(out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_nodes(address: str, env: dict) -> int:
    proc = subprocess.run([RAY, "status", f"--address={address}"], capture_output=True, text=True, timeout=60, env=env)
    return proc.stdout.count(" node_") if proc.returncode == 0 else 0


def test_two_node_token_cluster_survives_losing_its_worker_node(reference, miniatures, small_shards_recipe, tmp_path):
    """``ray start --head`` with token authentication (Ray's default once a token exists), a
    worker node joining it, and ``m4 build --ray-address`` given only the token (no RAY_AUTH_MODE):
    the build joins, loses the worker node mid-run, and still writes the reference bytes. Without
    the token it stops with one line that says what to do."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    temp = tempfile.mkdtemp(prefix="/tmp/m4c-")
    token = tmp_path / "auth_token"
    token.write_text(secrets.token_hex(32))
    base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH") and k != "RAY_ADDRESS"}
    base["RAY_USAGE_STATS_ENABLED"] = "0"
    nodes_env = {**base, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    common = ["--num-cpus=1", "--block", "--disable-usage-stats"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    head_cmd = [RAY, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--include-dashboard=false",
                f"--temp-dir={temp}", *common]  # fmt: skip
    head = subprocess.Popen(head_cmd, start_new_session=True, env=nodes_env, **quiet)
    worker = None
    try:
        deadline = time.time() + 120
        while ray_nodes(address, nodes_env) < 1:
            assert time.time() < deadline, "head node did not start"
            time.sleep(1)
        worker_cmd = [RAY, "start", f"--address={address}", "--node-ip-address=127.0.0.1", *common]
        worker = subprocess.Popen(worker_cmd, start_new_session=True, env=nodes_env, **quiet)
        while ray_nodes(address, nodes_env) < 2:
            assert time.time() < deadline, "worker node did not join"
            time.sleep(1)
        # no token anywhere: refused in one line (HOME elsewhere, so ~/.ray/auth_token is not found)
        no_token = {**base, "HOME": str(tmp_path / "home")}
        refused = start_build(small_shards_recipe, miniatures, tmp_path / "refused", "--ray-address", address,
                              env=no_token)  # fmt: skip
        log = refused.communicate(timeout=300)[0].decode(errors="replace")
        assert refused.returncode == 2, log[-3000:]
        assert f"cannot join the Ray cluster at {address}" in log and "token" in log and "Traceback" not in log
        out = tmp_path / "out"
        build_env = {**base, "RAY_AUTH_TOKEN_PATH": str(token)}  # the token only: m4 turns token mode on
        build = start_build(small_shards_recipe, miniatures, out, "--ray-address", address, env=build_env)
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
        for _ in range(20):  # the nodes' processes may still be exiting (and writing logs)
            shutil.rmtree(temp, ignore_errors=True)
            if not os.path.exists(temp):
                break
            time.sleep(0.5)


def _scale_corpus(root: Path, n: int) -> Path:
    """``n`` synthetic records in three real layouts (the scale benchmark's corpus): NLVR2 lines,
    a LLaVA mix list and VidSTG sentences over VidOR videos, referenced (no pixels in shards)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import scale
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    scale.write_pools(root / "sources")
    counts = scale.write_corpus(root / "sources", n)
    recipe = root / "recipe.yaml"
    recipe.write_text(scale.recipe_text("reference", 512, counts))
    return recipe


def test_ten_thousand_records_identical_on_one_and_two_cpus_and_after_a_sigkill(tmp_path):
    """At 10K records (20 units, 5 shards): 2 CPUs with every sort on Ray, 1 CPU with the sorts in
    the driver, and a 2-CPU build killed after 5 units then resumed give the same bytes."""
    recipe = _scale_corpus(tmp_path, 10_000)
    src = tmp_path / "sources"

    def build(out: Path, *extra: str, env: dict | None = None) -> None:
        proc = start_build(recipe, src, out, *extra, env=env)
        output = proc.communicate(timeout=600)[0]
        assert proc.returncode == 0, output[-3000:]

    on_ray = {**os.environ, "M4_IN_PROCESS_ROWS": "0"}
    build(tmp_path / "two", "--num-cpus", "2", env=on_ray)
    reference = shard_bytes(tmp_path / "two")
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["totals"]["read"] == 10_000 and len(reference) >= 5
    build(tmp_path / "one", "--num-cpus", "1")
    assert shard_bytes(tmp_path / "one") == reference
    assert (tmp_path / "one" / "index.json").read_text() == (tmp_path / "two" / "index.json").read_text()

    out = tmp_path / "killed"
    proc = start_build(recipe, src, out, "--num-cpus", "2")
    wait_for(lambda: markers(out, "units") >= 5, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "index.json").exists()
    build(out, "--resume", "--num-cpus", "2")
    assert shard_bytes(out) == reference
    for name in ("index.json", "quarantine.jsonl", "duplicates.jsonl"):
        assert (out / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
