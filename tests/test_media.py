import io

import numpy as np
import pytest
from PIL import Image

from m4_pipeline.errors import MediaError
from m4_pipeline.media.images import encode_jpeg, read_image_file
from m4_pipeline.media.patches import AnyresTiler, select_best_resolution
from m4_pipeline.media.sampling import STRangeSampler, UniformSampler, VideoInfo
from m4_pipeline.media.video import probe, read_frames
from m4_pipeline.synthetic import write_video


def test_uniform_sampler_is_llava_linspace():
    info = VideoInfo(300, 30.0, 64, 48)
    assert UniformSampler(10).indices(info) == np.linspace(0, 299, 10, dtype=int).tolist()
    assert UniformSampler(10).indices(info)[0] == 0 and UniformSampler(10).indices(info)[-1] == 299


def test_st_sampler_gives_100_frames_over_the_range_endpoints_included():
    idx = STRangeSampler(5, 149).indices(VideoInfo(150, 30.0, 64, 48))
    assert len(idx) == 100 and idx[0] == 5 and idx[-1] == 149
    assert idx == [5 + round(i / 99 * 144) for i in range(100)]
    assert idx[1] == 6 and idx[50] == 5 + round(50 / 99 * 144)
    short = STRangeSampler(0, 49).indices(VideoInfo(50, 30.0, 64, 48))
    assert len(short) == 100 and sorted(short) == short and short[-1] == 49  # repeats on short ranges
    with pytest.raises(MediaError, match="outside the video"):
        STRangeSampler(10, 200).indices(VideoInfo(150, 30.0, 64, 48))


def test_read_frames_returns_exact_indices_and_timestamps(tmp_path):
    path = tmp_path / "v.mp4"
    write_video(path, seed=1, num_frames=60, fps=30.0)
    info = probe(path)
    assert (info.num_frames, info.fps, info.width, info.height) == (60, 30.0, 160, 96)
    frames = read_frames(path, [0, 30, 59, 30], info)
    assert [f.index for f in frames] == [0, 30, 59, 30]
    assert [f.timestamp for f in frames] == [0.0, 1.0, round(59 / 30, 6), 1.0]
    assert frames[0].pixels.shape == (96, 160, 3)
    assert not np.array_equal(frames[0].pixels, frames[2].pixels)  # the box moved


def test_bad_videos_raise_clear_errors(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match="zero-byte"):
        probe(empty)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    with pytest.raises(MediaError, match="cannot decode"):
        probe(junk)
    with pytest.raises(MediaError, match="missing video"):
        probe(tmp_path / "absent.mp4")


def test_images_keep_jpeg_bytes_and_reject_truncated(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 200, 30)).save(buf, "JPEG")
    good = tmp_path / "a.jpg"
    good.write_bytes(buf.getvalue())
    img = read_image_file(good, "a.jpg")
    assert (img.data, img.ext, img.size, img.ops) == (buf.getvalue(), "jpg", (64, 48), ["kept_original"])
    bad = tmp_path / "b.jpg"
    bad.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(MediaError, match="b.jpg: cannot decode"):
        read_image_file(bad, "b.jpg")
    assert encode_jpeg(np.zeros((8, 8, 3), np.uint8)) == encode_jpeg(np.zeros((8, 8, 3), np.uint8))


@pytest.mark.parametrize(
    "size,grid",
    [
        ((640, 480), (2, 2)),
        ((300, 600), (2, 1)),
        ((1024, 300), (1, 3)),
        ((200, 800), (3, 1)),
        ((384, 384), (2, 1)),
    ],
)
def test_anyres_grid_for_aspect_ratios(size, grid):
    tiler = AnyresTiler()
    assert tiler.grid_for(size) == grid
    patches = tiler.tile(Image.new("RGB", size, (90, 90, 90)))
    assert patches[0].grid is None and len(patches) == 1 + grid[0] * grid[1]
    assert [p.grid for p in patches[1:]] == [[r, c] for r in range(grid[0]) for c in range(grid[1])]
    assert all(p.image.size == (384, 384) for p in patches)


def test_select_best_resolution_prefers_effective_then_less_waste():
    assert select_best_resolution((1000, 1000), [[384, 768], [768, 768]]) == (768, 768)
    assert select_best_resolution((100, 100), [[768, 768], [384, 768]]) == (384, 768)


def test_rendered_views_are_not_blank_and_change_with_pose(tmp_path):
    pytest.importorskip("open3d")
    import open3d as o3d

    from m4_pipeline.media.render3d import ViewRenderer
    from m4_pipeline.synthetic import room_mesh, scanner_poses

    mesh_path = tmp_path / "scene_vh_clean_2.ply"
    o3d.io.write_triangle_mesh(str(mesh_path), room_mesh(0))
    k = np.array([[1170.0, 0, 647.75], [0, 1170.0, 483.75], [0, 0, 1]])
    views = ViewRenderer().render(mesh_path, scanner_poses(2, 0), k, (1296, 968), (384, 288))
    assert [v.shape for v in views] == [(288, 384, 3)] * 2
    for v in views:
        assert v.std() > 10 and len(np.unique(v.reshape(-1, 3), axis=0)) > 5
    assert np.abs(views[0].astype(int) - views[1].astype(int)).mean() > 5


def test_renderer_survives_changing_sizes_and_meshes(tmp_path):
    """Regression: a second EGL window created after one was destroyed rendered blank."""
    pytest.importorskip("open3d")
    import open3d as o3d

    from m4_pipeline.media.render3d import ViewRenderer
    from m4_pipeline.synthetic import room_mesh, scanner_poses

    k = np.array([[1170.0, 0, 647.75], [0, 1170.0, 483.75], [0, 0, 1]])
    meshes = []
    for i in range(2):
        meshes.append(tmp_path / f"m{i}.ply")
        o3d.io.write_triangle_mesh(str(meshes[-1]), room_mesh(i))
    for i, size in enumerate([(96, 64), (160, 120), (96, 64), (200, 100)]):
        (view,) = ViewRenderer().render(meshes[i % 2], scanner_poses(1, i), k, (1296, 968), size)
        assert view.shape == (size[1], size[0], 3) and view.std() > 10, (i, size)
