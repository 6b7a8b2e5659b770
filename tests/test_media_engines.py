"""The media engines' strategies and edge cases: samplers, frame folders, rotation, variable
frame rate, decoder fallback, image normalization, pose strategies and view selection."""

import io
import subprocess

import numpy as np
import pytest
from PIL import Image

from m4_pipeline.errors import MediaError
from m4_pipeline.media import video
from m4_pipeline.media.images import ImagePolicy, normalize_image
from m4_pipeline.media.patches import PadToSquare
from m4_pipeline.media.sampling import ExplicitFrames, ExplicitTimestamps, FpsSampler, STRangeSampler, VideoInfo
from m4_pipeline.media.video import ffmpeg_binary, iter_frames, probe, read_frames
from m4_pipeline.synthetic import synthetic_image, write_video


def ffmpeg(*args):
    subprocess.run([ffmpeg_binary(), "-loglevel", "error", "-y", *args], check=True)


def test_fps_sampler_steps_then_caps_uniformly():
    info = VideoInfo(300, 30.0, 64, 48)
    assert FpsSampler(video_fps=1, frames_upbound=32).indices(info) == list(range(0, 300, 30))
    capped = FpsSampler(video_fps=2, frames_upbound=8).indices(info)  # 20 frames > 8 -> linspace
    assert capped == np.linspace(0, 299, 8, dtype=int).tolist()
    assert FpsSampler(video_fps=1, frames_upbound=16, force_sample=True).indices(info) == np.linspace(
        0, 299, 16, dtype=int).tolist()  # fmt: skip
    assert FpsSampler(video_fps=1, frames_upbound=0).indices(VideoInfo(90, 29.97, 8, 8)) == [0, 30, 60]


def test_explicit_frames_and_timestamps():
    info = VideoInfo(300, 30.0, 64, 48)
    assert ExplicitFrames([5, 3, 5]).indices(info) == [5, 3, 5]
    assert ExplicitTimestamps([0.0, 1.0, 9.99]).indices(info) == [0, 30, 299]
    with pytest.raises(MediaError, match="outside"):
        ExplicitFrames([300]).indices(info)
    with pytest.raises(MediaError, match="outside"):
        ExplicitTimestamps([11.0]).indices(info)


def test_frame_folder_llava_hound_layout(tmp_path):
    folder = tmp_path / "frames" / "all_frames" / "v_abc"
    folder.mkdir(parents=True)
    for i in range(12):  # natural order: frame_2 before frame_10
        synthetic_image(i, (32, 24)).save(folder / f"frame_{i}.jpg")
    info = probe(folder, folder_fps=2.0)
    assert (info.num_frames, info.fps, info.width, info.height) == (12, 2.0, 32, 24)
    frames = read_frames(folder, [0, 2, 10], info)
    assert [f.index for f in frames] == [0, 2, 10] and [f.timestamp for f in frames] == [0.0, 1.0, 5.0]
    expected = np.asarray(Image.open(folder / "frame_10.jpg").convert("RGB"))
    assert np.array_equal(frames[2].pixels, expected)
    with pytest.raises(MediaError, match="no images"):
        probe(tmp_path / "frames")


def test_rotation_metadata_is_applied(tmp_path):
    plain = tmp_path / "plain.mp4"
    write_video(plain, seed=3, num_frames=10, size=(160, 96))
    rotated = tmp_path / "rotated.mp4"
    ffmpeg("-i", str(plain), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(rotated))
    info = probe(rotated)
    assert (info.width, info.height) == (96, 160)
    assert read_frames(rotated, [0], info)[0].pixels.shape == (160, 96, 3)


def test_variable_frame_rate_timestamps_are_presentation_times(tmp_path):
    path = tmp_path / "vfr.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x96:rate=30", "-t", "2", "-vf",
           "setpts='if(lt(N,30),N/30,1+(N-30)/10)/TB'", "-vsync", "vfr", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", str(path))  # fmt: skip
    info = probe(path)
    frames = read_frames(path, [15, 35], info)
    assert frames[0].timestamp == pytest.approx(0.5, abs=1e-3)
    assert frames[1].timestamp == pytest.approx(1.5, abs=1e-3)  # not 35 / avg_fps
    assert abs(35 / info.fps - 1.5) > 0.05


def test_ffmpeg_fallback_matches_pyav(tmp_path, monkeypatch):
    path = tmp_path / "v.mp4"
    write_video(path, seed=5, num_frames=40)
    indices = [0, 17, 39, 17]
    with_pyav = read_frames(path, indices)
    monkeypatch.setattr(video, "_decord", lambda: None)
    monkeypatch.setattr(video, "_pyav", lambda: None)
    info = probe(path)  # ffmpeg probe (no ffprobe needed)
    assert (info.num_frames, info.width, info.height) == (40, 160, 96)
    with_ffmpeg = read_frames(path, indices, info)
    assert [f.index for f in with_ffmpeg] == indices
    for a, b in zip(with_pyav, with_ffmpeg):
        assert np.abs(a.pixels.astype(int) - b.pixels.astype(int)).mean() < 3


def test_large_files_stream_through_ffmpeg(tmp_path, monkeypatch):
    path = tmp_path / "v.mp4"
    write_video(path, seed=4, num_frames=300, size=(64, 48))
    reference = read_frames(path, [0, 150, 299])
    monkeypatch.setattr(video, "DECORD_MAX_BYTES", 1)  # every file counts as large now
    info = probe(path)
    seeked = read_frames(path, [0, 150, 299], info)  # sparse: one accurate seek per frame
    streamed = read_frames(path, list(range(0, 300, 2)), info)  # dense: one streaming select
    assert len(streamed) == 150 and streamed[75].index == 150
    for a, b in zip(reference, [*seeked, streamed[75]]):
        assert a.index == b.index or a.index == 150
    for a, b in zip(reference, seeked):
        assert np.abs(a.pixels.astype(int) - b.pixels.astype(int)).mean() < 3
    assert np.abs(reference[1].pixels.astype(int) - streamed[75].pixels.astype(int)).mean() < 3


def test_unsupported_and_corrupt_files(tmp_path, monkeypatch):
    text = tmp_path / "notes.mp4"
    text.write_text("this is a text file\n" * 50)
    with pytest.raises(MediaError, match="cannot decode video"):
        probe(text)
    good = tmp_path / "good.mp4"
    write_video(good, seed=1, num_frames=60)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(good.read_bytes()[:400])  # header only: no decodable frames
    with pytest.raises(MediaError):
        read_frames(cut, [0, 59])


def test_long_video_decodes_only_what_it_needs_with_decord(tmp_path, monkeypatch):
    path = tmp_path / "long.mp4"
    write_video(path, seed=2, num_frames=900, size=(64, 48))
    import decord

    monkeypatch.setattr(video, "_pyav", lambda: None)  # decord is the reader when PyAV is missing
    calls = []
    real = decord.VideoReader.get_batch

    def spy(self, chunk):
        calls.append(len(chunk))
        return real(self, chunk)

    monkeypatch.setattr(decord.VideoReader, "get_batch", spy)
    frames = list(iter_frames(path, STRangeSampler(0, 899).indices(probe(path))))
    assert len(frames) == 100 and max(calls) <= video.DECODE_BATCH


def jpeg_bytes(img, **kw):
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kw)
    return buf.getvalue()


def test_image_normalization_cases():
    base = synthetic_image(1, (80, 40))
    # EXIF orientation 6 (rotate 90 CW to display): pixels are transposed, orientation recorded
    exif = Image.Exif()
    exif[0x0112] = 6
    out = normalize_image(jpeg_bytes(base, exif=exif), "rot.jpg")
    assert out.size == (40, 80) and out.ops == ["exif_orientation:6", "jpeg:95"]
    # palette with transparency, RGBA, CMYK, 16-bit grey -> RGB JPEG
    cases = {
        "P": base.convert("P", palette=Image.ADAPTIVE),
        "RGBA": base.convert("RGBA"),
        "CMYK": base.convert("CMYK"),
        "I;16": Image.fromarray((np.linspace(0, 65535, 80 * 40).reshape(40, 80)).astype(np.uint16)),
    }
    for mode, img in cases.items():
        buf = io.BytesIO()
        img.save(buf, "TIFF" if mode in ("CMYK", "I;16") else "PNG")
        out = normalize_image(buf.getvalue(), f"{mode}.img")
        assert out.ext == "jpg" and f"to_rgb:{img.mode}" in out.ops, mode
        decoded = Image.open(io.BytesIO(out.data))
        assert decoded.mode == "RGB" and decoded.size == (80, 40)
    grey16 = Image.open(io.BytesIO(normalize_image(_tiff(cases["I;16"]), "g").data))
    assert grey16.getpixel((79, 39))[0] > 240 and grey16.getpixel((0, 0))[0] < 15  # rescaled, not clipped
    # an acceptable JPEG keeps its bytes; a too-large one is resized
    data = jpeg_bytes(base)
    assert normalize_image(data, "a.jpg").data == data
    small = normalize_image(data, "a.jpg", ImagePolicy(max_side=40))
    assert small.size == (40, 20) and small.ops == ["resize:40x20", "jpeg:95"]
    # decompression-bomb guard and determinism
    with pytest.raises(MediaError, match="pixel limit"):
        normalize_image(data, "bomb.jpg", ImagePolicy(max_pixels=1000))
    png = io.BytesIO()
    base.save(png, "PNG")
    assert normalize_image(png.getvalue(), "x").data == normalize_image(png.getvalue(), "x").data


def _tiff(img):
    buf = io.BytesIO()
    img.save(buf, "TIFF")
    return buf.getvalue()


def test_pad_to_square_uses_the_processor_mean():
    out = PadToSquare().apply(Image.new("RGB", (60, 20), (255, 0, 0)))
    assert out.size == (60, 60) and out.getpixel((0, 0)) == (127, 127, 127) and out.getpixel((30, 30)) == (255, 0, 0)


def test_pose_strategies_and_view_selection(miniatures):
    from m4_pipeline.media.render3d import ImageViewSelector, OrbitPoses, ScanNetScene, TrajectoryPoses

    scene = ScanNetScene(miniatures / "scanqa", "scans/scene0000_00", "scene0000_00")
    traj = TrajectoryPoses(3).select(scene, "k")
    assert [label for label, _ in traj] == ["0", "6", "11"]  # 12 recorded poses, spread uniformly
    a = OrbitPoses(4).select(scene, "sample-a")
    assert [p.tolist() for _, p in a] == [p.tolist() for _, p in OrbitPoses(4).select(scene, "sample-a")]
    b = OrbitPoses(4).select(scene, "sample-b")
    assert not np.allclose(a[0][1], b[0][1])
    for _, pose in a:
        assert pose[2, 3] == pytest.approx(1.5 - 0.05)  # eye height above the floor (floor top at z=0)
        to_centre = np.array([3.0, 3.0]) - pose[:2, 3]
        assert np.dot(pose[:2, 2], to_centre) > 0  # looking inward
    cams = {name: f"{name}.jpg" for name in ImageViewSelector.NUSCENES_ORDER}
    picked = ImageViewSelector(order=ImageViewSelector.NUSCENES_ORDER).select(cams)
    assert [n for n, _ in picked] == ImageViewSelector.NUSCENES_ORDER
    assert [n for n, _ in ImageViewSelector(order=["CAM_BACK", "CAM_FRONT"]).select(cams)] == [
        "CAM_BACK",
        "CAM_FRONT",
    ]
    with pytest.raises(MediaError, match="missing view"):
        ImageViewSelector(order=["CAM_TOP"]).select(cams)
    frames = [f"f{i}.png" for i in range(10)]
    assert [p for _, p in ImageViewSelector(views=4).select(frames)] == [
        "f0.png",
        "f3.png",
        "f6.png",
        "f9.png",
    ]
