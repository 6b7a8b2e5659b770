"""The PyAV frame reader: the exact frames a full sequential decode gives, for the container and
group-of-pictures layouts videos come in, at the least decoding the request needs."""

import subprocess

import numpy as np
import pytest

from m4_pipeline.media import video
from m4_pipeline.media.sampling import STRangeSampler
from m4_pipeline.media.video import ffmpeg_binary, iter_frames, probe, read_frames

pytest.importorskip("av")

W, H, FPS, SECONDS = 160, 96, 25, 6

LAYOUTS = {
    "bframes.mp4": ["-c:v", "libx264", "-g", "25", "-bf", "3"],
    "open_gop.mp4": ["-c:v", "libx264", "-x264-params", "open-gop=1:keyint=30", "-bf", "3"],
    "mkv.mkv": ["-c:v", "libx264", "-g", "40", "-bf", "2"],
    "vp9.webm": ["-c:v", "libvpx-vp9", "-g", "30", "-deadline", "realtime", "-cpu-used", "8"],
    "mpeg4_packed.avi": ["-c:v", "mpeg4", "-g", "12", "-bf", "2"],  # decord misorders these frames
    "offset_start.ts": ["-c:v", "libx264", "-g", "30"],  # starts at 1.4 s; seeks land late
}


def make(path, args):
    subprocess.run([ffmpeg_binary(), "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={W}x{H}:rate={FPS}", "-t", str(SECONDS), *args, "-pix_fmt", "yuv420p",
                    str(path)], check=True)  # fmt: skip


def every_frame(path) -> np.ndarray:
    """Ground truth: the ffmpeg CLI decoding the whole file, frames in presentation order."""
    raw = subprocess.run([ffmpeg_binary(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24",
                          "-vsync", "passthrough", "-"], capture_output=True, check=True).stdout  # fmt: skip
    return np.frombuffer(raw, np.uint8).reshape(-1, H, W, 3)


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_pyav_gives_the_exact_frames_of_a_full_decode(tmp_path, name):
    path = tmp_path / name
    make(path, LAYOUTS[name])
    truth = every_frame(path)
    n = len(truth)
    video._open_pyav.cache_clear()
    assert video._PyAVReader.open(path) is not None
    info = probe(path)
    assert (info.num_frames, info.fps, info.width, info.height) == (n, FPS, W, H)
    rng = np.random.default_rng(0)
    requests = [
        np.linspace(0, n - 1, 10, dtype=int).tolist(),  # sparse: a seek each
        list(range(0, n, 3)),  # dense: decode straight through
        rng.integers(0, n, 40).tolist(),  # any order, repeats
        [n - 1, 0, n - 1, 1],
    ]
    for indices in requests:
        frames = read_frames(path, indices, info)
        assert [f.index for f in frames] == indices
        for f in frames:
            if name.endswith(".avi"):  # MPEG-4 part 2's IDCT is not bit-exact across FFmpeg versions
                diffs = np.abs(truth.astype(np.int16) - f.pixels).mean(axis=(1, 2, 3))
                assert diffs.argmin() == f.index and diffs[f.index] < 0.05, (name, f.index)
            else:  # H.264 and VP9 decoding is bit-exact
                assert np.array_equal(f.pixels, truth[f.index]), (name, f.index)


def test_timestamps_are_presentation_times_from_the_start_of_the_stream(tmp_path):
    path = tmp_path / "offset_start.ts"
    make(path, LAYOUTS["offset_start.ts"])
    frames = read_frames(path, [0, 25])
    assert frames[1].timestamp - frames[0].timestamp == pytest.approx(1.0, abs=1e-6)
    assert frames[0].timestamp > 1.0  # MPEG-TS starts its clock at 1.4 s, as decord reports it too


def test_seeks_or_decodes_on_whichever_decodes_fewer_frames(tmp_path):
    path = tmp_path / "gop10.mp4"
    make(path, ["-c:v", "libx264", "-g", "10", "-keyint_min", "10", "-sc_threshold", "0", "-bf", "0"])
    video._open_pyav.cache_clear()
    reader = video._PyAVReader.open(path)
    assert reader.keys.tolist() == list(range(0, 150, 10))
    start = reader.decoded  # frame 0, decoded on opening
    list(reader.frames([5, 8, 95, 99, 148]))
    # 1..5 and 6..8 by decoding on; 90..95 and 96..99 after one seek; 140..148 after another
    assert reader.decoded - start == 5 + 3 + 6 + 4 + 9
    before = reader.decoded
    list(reader.frames([3]))  # behind: back to its key frame
    assert reader.decoded - before == 4


def test_pyav_reader_is_reused_between_probe_and_read(tmp_path, monkeypatch):
    path = tmp_path / "v.mp4"
    make(path, LAYOUTS["bframes.mp4"])
    video._open_pyav.cache_clear()
    info = probe(path)
    opened = video._open_pyav.cache_info().misses
    frames = list(iter_frames(path, [0, 50, 149], info))
    assert video._open_pyav.cache_info().misses == opened and len(frames) == 3


def test_pyav_holds_at_most_one_batch_of_frames(tmp_path, monkeypatch):
    path = tmp_path / "long.mp4"
    make(path, ["-c:v", "libx264", "-g", "50"])
    video._open_pyav.cache_clear()
    calls = []
    real = video._PyAVReader._decode

    def spy(self, wanted):
        calls.append(len(wanted))
        return real(self, wanted)

    monkeypatch.setattr(video._PyAVReader, "_decode", spy)
    frames = iter_frames(path, STRangeSampler(0, 149).indices(probe(path)))
    assert len(list(frames)) == 100 and max(calls) <= video.DECODE_BATCH


def test_h264_in_avi_with_b_frames_is_numbered_by_decode_output(tmp_path):
    """AVI stores no presentation times: with B-frames the packet times are decode times, and
    frames must be numbered in the decoder's output order (DiDeMo's videos are .avi)."""
    import subprocess

    import numpy as np

    from m4_pipeline.media.video import iter_frames, probe
    from m4_pipeline.synthetic import write_video

    path = tmp_path / "b.avi"
    write_video(path, seed=3, num_frames=90, fps=10, size=(96, 64))  # libx264, B-frames, in AVI
    info = probe(path)
    frames = list(iter_frames(path, [0, 11, 22, 5, 89, 40], info))
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout  # fmt: skip
    full = np.frombuffer(raw, np.uint8).reshape(-1, 64, 96, 3)
    assert info.num_frames == len(full) == 90
    assert all(np.array_equal(f.pixels, full[f.index]) for f in frames)
    assert [f.timestamp for f in frames] == [0.0, 1.1, 2.2, 0.5, 8.9, 4.0]
