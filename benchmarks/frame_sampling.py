"""Frame sampling vs the ffmpeg CLI extracting the same frames, and peak memory on long 1080p clips.

    .venv/bin/python benchmarks/frame_sampling.py [--minutes 5] [--long-seconds 60 180]

Makes a 480p H.264 clip of ``--minutes`` (testsrc2, 30 fps) and times, for 10, 32 and 100
uniformly sampled frames, (a) our path: probe + UniformSampler + iter_frames + JPEG encode, and
(b) the ffmpeg CLI writing the same frames as JPEG files with a select filter. Ratio = ffmpeg
time / our time (target >= 1.0). Then, in a fresh process per clip, samples ST's 100 frames from
1080p clips of each ``--long-seconds`` and reports the peak resident memory (target < 1.5 GB,
independent of length).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from m4_pipeline.media.images import encode_jpeg  # noqa: E402
from m4_pipeline.media.video import UniformSampler, ffmpeg_binary, iter_frames, probe  # noqa: E402

CHILD = """
import json, sys
sys.path.insert(0, {root!r})
from m4_pipeline.media.images import encode_jpeg
from m4_pipeline.media.video import STRangeSampler, iter_frames, probe
path = {path!r}
info = probe(path)
indices = STRangeSampler(0, info.num_frames - 1).indices(info)
n = sum(len(encode_jpeg(f.pixels)) > 0 for f in iter_frames(path, indices, info))
# VmHWM: this process's own peak (ru_maxrss would include the parent's, inherited across exec)
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({{"frames": n, "total": info.num_frames, "peak_kb": peak}}))
"""


def make_clip(path: Path, seconds: int, size: str) -> None:
    subprocess.run([ffmpeg_binary(), "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30",
                    "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)],
                   check=True)  # fmt: skip


def ours(path: Path, n: int) -> float:
    t = time.perf_counter()
    info = probe(path)
    for frame in iter_frames(path, UniformSampler(n).indices(info), info):
        encode_jpeg(frame.pixels)
    return time.perf_counter() - t


def ffmpeg_cli(path: Path, n: int, out: Path) -> float:
    info = probe(path)
    expr = "+".join(f"eq(n\\,{i})" for i in UniformSampler(n).indices(info))
    out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    subprocess.run([ffmpeg_binary(), "-loglevel", "error", "-y", "-i", str(path), "-vf", f"select={expr}",
                    "-vsync", "0", "-q:v", "2", str(out / "%04d.jpg")], check=True)  # fmt: skip
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--long-seconds", type=int, nargs="+", default=[60, 180])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="m4frames-"))
    clip = work / "clip480.mp4"
    t = time.perf_counter()
    make_clip(clip, int(args.minutes * 60), "854x480")
    info = probe(clip)
    print(f"clip: {info.num_frames} frames, {info.width}x{info.height} H.264, made in {time.perf_counter() - t:.1f} s")
    print(f"{'frames':>7}{'ours s':>9}{'ffmpeg CLI s':>14}{'ratio':>8}")
    for n in (10, 32, 100):
        a = min(ours(clip, n) for _ in range(2))
        b = min(ffmpeg_cli(clip, n, work / f"ff{n}") for _ in range(2))
        print(f"{n:>7}{a:>9.2f}{b:>14.2f}{b / a:>8.2f}")
    print(f"\n{'1080p clip':>12}{'frames':>8}{'sampled':>9}{'peak RSS MB':>13}")
    for seconds in args.long_seconds:
        path = work / f"clip1080_{seconds}.mp4"
        make_clip(path, seconds, "1920x1080")
        code = CHILD.format(root=str(Path(__file__).resolve().parent.parent), path=str(path))
        res = json.loads(
            subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        )
        print(f"{f'{seconds} s':>12}{res['total']:>8}{res['frames']:>9}{res['peak_kb'] / 1024:>13.0f}")
        path.unlink()


if __name__ == "__main__":
    main()
