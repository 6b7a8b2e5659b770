"""Frame sampling vs the best ffmpeg command for the same frames, per core, and peak memory.

    .venv/bin/python benchmarks/frame_sampling.py [--minutes 5] [--repeat 3] [--cpu N] [--long-seconds 60 180]

Everything runs pinned to one CPU (``--cpu``, default the last one this process may use; child
processes inherit it) with one decoder thread, which is what a Ray task with ``num_cpus=1`` gets.
On a 480p H.264 clip of ``--minutes`` (testsrc2, 30 fps, a key frame every 250 frames) and for
10, 32 and 100 uniformly sampled frames, it times

- ours: ``probe`` + ``UniformSampler`` + ``iter_frames`` + ``encode_jpeg`` of every frame, with
  the decoder caches emptied first (each run opens and indexes the file, as a task does);
- the ffmpeg CLI (``-threads 1``) writing the same frames as JPEG files, three ways: one process
  decoding the whole clip through a ``select`` filter; one process per frame, each seeking
  accurately (``-ss`` before ``-i``); one process with one accurately seeking input per frame.
  The cheapest of the three is the baseline.

A third table gives the CPU time of one ST sample (100 frames, max_side 384) in each media mode
(frames, clip, reference) with the bytes it puts in a shard; frames mode is the baseline. The
clip is synthetic (testsrc2): its H.264 size says little about real footage.

Each ffmpeg output is checked to be the same frames as ours: every JPEG must be nearer (mean
absolute difference) to our frame at that index than to its neighbours. Ratios are baseline /
ours (above 1.0: we are faster), in CPU seconds (self and children, from getrusage) and in wall
seconds; each figure is the best of ``--repeat`` runs, and the spread of our CPU time over the
runs is printed to judge noise. Then, in a fresh process per 1080p clip of each
``--long-seconds``, ST's 100 frames are sampled and the peak resident memory is reported: ours
(the process's own peak plus the largest child it started: ffmpeg readers for large files) and
the best ffmpeg command's for the same frames.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from m4_pipeline.media import video  # noqa: E402
from m4_pipeline.media.clips import clip_media  # noqa: E402
from m4_pipeline.media.images import encode_jpeg  # noqa: E402
from m4_pipeline.media.sampling import STRangeSampler, UniformSampler  # noqa: E402
from m4_pipeline.media.video import ffmpeg_binary, frame_media, iter_frames, probe  # noqa: E402
from m4_pipeline.writer import file_sha256  # noqa: E402

GOP = 250

CHILD = """
import json, resource, sys
sys.path.insert(0, {root!r})
from m4_pipeline.media.images import encode_jpeg
from m4_pipeline.media.video import iter_frames, probe
from m4_pipeline.media.sampling import STRangeSampler
path = {path!r}
info = probe(path)
indices = STRangeSampler(0, info.num_frames - 1).indices(info)
n = sum(len(encode_jpeg(f.pixels)) > 0 for f in iter_frames(path, indices, info))
# VmHWM: this process's own peak (ru_maxrss would include the parent's, inherited across exec)
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest ffmpeg it started
print(json.dumps({{"frames": n, "total": info.num_frames, "peak_kb": peak, "child_kb": child}}))
"""

FFMPEG_PEAK = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children, user + system."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn, *args):
    c, t = cpu_seconds(), time.perf_counter()
    out = fn(*args)
    return out, cpu_seconds() - c, time.perf_counter() - t


def make_clip(path: Path, seconds: int, size: str) -> None:
    subprocess.run([ffmpeg_binary(), "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30",
                    "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", str(GOP),
                    "-pix_fmt", "yuv420p", str(path)], check=True)  # fmt: skip


def ours(path: Path, indices: list[int]) -> list[bytes]:
    video._open_pyav.cache_clear()  # a task opens the file once: no reader left from the last run
    video._open_decord.cache_clear()
    info = probe(path)
    return [encode_jpeg(f.pixels) for f in iter_frames(path, indices, info)]


def seek_time(index: int, fps: float) -> str:
    """-ss for frame ``index``: its time rounded down to the microsecond (ffmpeg keeps frames at or after it)."""
    return f"{math.floor(index / fps * 1e6) / 1e6:.6f}"


def ffmpeg_select(path: Path, indices: list[int], fps: float, out: Path) -> list[str]:
    expr = "+".join(f"eq(n\\,{i})" for i in indices)
    return [ffmpeg_binary(), "-loglevel", "error", "-y", "-threads", "1", "-i", str(path), "-vf", f"select={expr}",
            "-vsync", "0", "-q:v", "2", str(out / "%04d.jpg")]  # fmt: skip


def ffmpeg_seek_each(path: Path, indices: list[int], fps: float, out: Path) -> list[list[str]]:
    return [[ffmpeg_binary(), "-loglevel", "error", "-y", "-threads", "1", "-ss", seek_time(i, fps), "-i", str(path),
             "-frames:v", "1", "-q:v", "2", str(out / f"{k + 1:04d}.jpg")] for k, i in enumerate(indices)]  # fmt: skip


def ffmpeg_multi_input(path: Path, indices: list[int], fps: float, out: Path) -> list[str]:
    cmd = [ffmpeg_binary(), "-loglevel", "error", "-y"]
    for i in indices:
        cmd += ["-threads", "1", "-ss", seek_time(i, fps), "-i", str(path)]
    for k in range(len(indices)):
        cmd += ["-map", f"{k}:v", "-frames:v", "1", "-q:v", "2", str(out / f"{k + 1:04d}.jpg")]
    return cmd


BASELINES = {
    "select filter, 1 process": ffmpeg_select,
    "seek per frame, N processes": ffmpeg_seek_each,
    "seek per input, 1 process": ffmpeg_multi_input,
}


def run_ffmpeg(cmds) -> None:
    for cmd in cmds if isinstance(cmds[0], list) else [cmds]:
        subprocess.run(cmd, check=True)


def as_pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.int16)


def same_frames(path: Path, indices: list[int], jpegs: list[bytes], num_frames: int) -> bool:
    """Every JPEG is nearest to our frame at its index, not to the frames beside it."""
    video._open_pyav.cache_clear()
    for i, data in zip(indices, jpegs):
        around = [j for j in (i - 1, i, i + 1) if 0 <= j < num_frames]
        frames = {f.index: f.pixels.astype(np.int16) for f in iter_frames(path, around)}
        got = as_pixels(data)
        diffs = {j: float(np.abs(got - px).mean()) for j, px in frames.items()}
        if min(diffs, key=diffs.get) != i:
            return False
    return True


def pin(cpu: int | None) -> int:
    allowed = sorted(os.sched_getaffinity(0))
    cpu = allowed[-1] if cpu is None else cpu
    os.sched_setaffinity(0, {cpu})
    os.environ["OMP_NUM_THREADS"] = "1"  # what Ray sets for a one-CPU task: one decoder thread
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cpu", type=int, default=None, help="the CPU to pin to (default: the last allowed)")
    parser.add_argument("--frames", type=int, nargs="+", default=[10, 32, 100])
    parser.add_argument("--long-seconds", type=int, nargs="*", default=[60, 180])
    parser.add_argument(
        "--engine",
        choices=["auto", "decord"],
        default="auto",
        help="decord: our reader without PyAV (the reader before PyAV was added)",
    )
    args = parser.parse_args()
    cpu = pin(args.cpu)
    if args.engine == "decord":
        video._pyav = lambda: None
    work = Path(tempfile.mkdtemp(prefix="m4frames-"))
    try:
        clip = work / "clip480.mp4"
        make_clip(clip, int(args.minutes * 60), "854x480")
        info = probe(clip)
        engine = "PyAV" if video._pyav() else "decord" if video._decord() else "ffmpeg CLI"
        print(f"clip: {info.num_frames} frames, {info.width}x{info.height} H.264, key frame every {GOP}; "
              f"pinned to CPU {cpu}, one decoder thread, ours via {engine}; best of {args.repeat} runs")  # fmt: skip
        rows, detail = [], []
        for n in args.frames:
            indices = UniformSampler(n).indices(info)
            mine = [timed(ours, clip, indices) for _ in range(args.repeat)]
            jpegs = mine[0][0]
            ours_cpu, ours_wall = min(m[1] for m in mine), min(m[2] for m in mine)
            spread = max(m[1] for m in mine) / ours_cpu
            best = None
            for name, make in BASELINES.items():
                out = work / f"ff{n}"
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                cmds = make(clip, indices, info.fps, out)
                runs = [timed(run_ffmpeg, cmds) for _ in range(args.repeat)]
                written = [p.read_bytes() for p in sorted(out.glob("*.jpg"))]
                ok = len(written) == len(jpegs) and same_frames(clip, indices, written, info.num_frames)
                cpu_s, wall_s = min(r[1] for r in runs), min(r[2] for r in runs)
                detail.append((n, name, cpu_s, wall_s, ok))
                if ok and (best is None or cpu_s < best[1]):
                    best = (name, cpu_s, wall_s)
            if best is None:
                raise SystemExit(f"no ffmpeg command gave the same {n} frames")
            rows.append((n, ours_cpu, ours_wall, spread, *best))
        print(f"\n{'frames':>6}{'ours CPU s':>11}{'wall s':>8}{'spread':>8}  {'best ffmpeg command':<28}"
              f"{'CPU s':>7}{'wall s':>8}{'CPU ratio':>10}{'wall ratio':>11}")  # fmt: skip
        for n, oc, ow, spread, name, bc, bw in rows:
            print(f"{n:>6}{oc:>11.3f}{ow:>8.3f}{spread:>8.2f}  {name:<28}{bc:>7.3f}{bw:>8.3f}"
                  f"{bc / oc:>10.2f}{bw / ow:>11.2f}")  # fmt: skip
        print(f"\n{'frames':>6}  {'ffmpeg command':<28}{'CPU s':>7}{'wall s':>8}  same frames as ours")
        for n, name, c, w, ok in detail:
            print(f"{n:>6}  {name:<28}{c:>7.3f}{w:>8.3f}  {ok}")
        media_modes(clip, args.repeat)
        if args.long_seconds:
            long_clips(work, args.long_seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def sample_as(mode: str, path: Path) -> int:
    """One ST video sample's media in ``mode`` (100 frames over the whole clip, max_side 384, as
    the adapters make it); the bytes it puts in a shard."""
    video._open_pyav.cache_clear()
    video._open_decord.cache_clear()
    info = probe(path)
    indices = STRangeSampler(0, info.num_frames - 1).indices(info)
    if mode == "reference":  # what a reference costs: the probe and the checksum, no pixel decoded
        file_sha256(path)
        return 0
    frames = list(iter_frames(path, indices, info))
    if mode == "clip":
        return len(clip_media(frames, max_side=384, fps=10.0, source_fps=info.fps).data)
    return sum(len(m.data) for m in frame_media(frames, one_slot=True, max_side=384))


def media_modes(path: Path, repeat: int) -> None:
    """CPU per ST sample (100 frames) in each media mode, one core; the baseline is frames mode
    (JPEGs at 384, the default before reference and clip existed). Pixels in the shard: 0 for a
    reference (its JSON description is ~600 bytes, see scale.py)."""
    rows = {}
    for mode in ("frames", "clip", "reference"):
        runs = [timed(sample_as, mode, path) for _ in range(repeat)]
        rows[mode] = (min(r[1] for r in runs), min(r[2] for r in runs), runs[0][0])
    base = rows["frames"][0]
    print(f"\nST sample, 100 frames of the clip at max_side 384 ({path.stat().st_size / 1e6:.0f} MB source)")
    print(f"{'media mode':>10}{'CPU s':>8}{'wall s':>8}{'shard bytes':>13}{'CPU vs frames':>15}")
    for mode, (c, w, size) in rows.items():
        print(f"{mode:>10}{c:>8.3f}{w:>8.3f}{size:>13}{base / c:>14.1f}x")


def long_clips(work: Path, seconds_list: list[int]) -> None:
    print(f"\n{'1080p clip':>10}{'MB':>6}{'frames':>8}{'sampled':>8}{'ours peak MB':>14}{'(children)':>11}"
          f"{'ffmpeg peak MB':>16}{'ratio':>7}")  # fmt: skip
    for seconds in seconds_list:
        path = work / f"clip1080_{seconds}.mp4"
        make_clip(path, seconds, "1920x1080")
        code = CHILD.format(root=str(ROOT), path=str(path))
        res = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                        check=True).stdout)  # fmt: skip
        info = probe(path)
        indices = STRangeSampler(0, info.num_frames - 1).indices(info)
        out = work / "ff_long"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        cmd = ffmpeg_select(path, sorted(set(indices)), info.fps, out)  # 100 of them: one streaming pass
        ff_kb = int(subprocess.run([sys.executable, "-c", FFMPEG_PEAK, *cmd], capture_output=True, text=True,
                                   check=True).stdout)  # fmt: skip
        ours_kb = res["peak_kb"] + res["child_kb"]
        print(
            f"{f'{seconds} s':>10}{path.stat().st_size / 1e6:>6.0f}{res['total']:>8}{res['frames']:>8}"
            f"{ours_kb / 1024:>14.0f}{res['child_kb'] / 1024:>11.0f}{ff_kb / 1024:>16.0f}{ff_kb / ours_kb:>7.2f}"
        )
        path.unlink()


if __name__ == "__main__":
    main()
