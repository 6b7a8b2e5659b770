"""LLaVA-Hound / ShareGPTVideo: QA/caption split, frame naming and sampling, tar.gz streaming."""

import io
import json
import shutil
import tarfile

import pytest
from PIL import Image

from m4_pipeline.adapters import get_adapter
from m4_pipeline.errors import BuildError, SourceError
from m4_pipeline.formats import to_record
from m4_pipeline.validate import validate_sample


def _build_all(adapter):
    out = {}
    for record in adapter.list_records():
        try:
            out[record.source_id] = adapter.build(record)
        except SourceError as err:
            out[record.source_id] = err
    return out


@pytest.fixture(scope="module")
def hound(miniatures):
    return miniatures / "llava_hound"


def test_qa_then_caption_lines_in_the_published_proportion(hound):
    cls = get_adapter("llava_hound")
    qa = list(cls(hound, cls.Params(part="qa")).list_records())
    captions = list(cls(hound, cls.Params(part="caption")).list_records())
    assert len(qa) == 32 and len(captions) == 2  # 34 lines cut as 240K of 255K
    assert [r.locator for r in captions] == ["line 33", "line 34"]
    exact = cls(hound, cls.Params(part="caption", qa_lines=30, total_lines=34))
    assert len(list(exact.list_records())) == 4  # a file of the published length: the boundary as given
    with pytest.raises(BuildError):
        cls.Params(split_rule="prompts")  # prompts must be given
    prompted = cls(hound, cls.Params(part="caption", split_rule="prompts",
                                     caption_prompts="Describe every scene of the video in detail."))  # fmt: skip
    assert [r.locator for r in prompted.list_records()] == ["line 33", "line 34"]


def test_records_have_the_release_video_layout(hound):
    cls = get_adapter("llava_hound")
    built = _build_all(cls(hound))
    sample = built["v_ZaQ3tL0aQ8w_0-L1"]
    record = to_record(sample)
    assert list(record) == ["id", "video", "conversations"]
    assert record["video"] == "shareVideoGPTV/frames/all_frames/v_ZaQ3tL0aQ8w"
    assert record["conversations"][0]["value"].startswith("<image>\n") and "<video>" not in json.dumps(record)
    assert len(sample.media) == 10 and {m.slot for m in sample.media} == {0} and validate_sample(sample) == []
    assert [m.frame_index for m in sample.media] == [0, 2, 4, 7, 9, 12, 14, 17, 19, 22]  # linspace(0, 22, 10)
    assert sample.media[1].timestamp == 1.0  # 2 fps folders
    no_token = built["v_ZaQ3tL0aQ8w_4-L5"]
    assert no_token.conversations[0].value.startswith("<image>\n") and no_token.provenance.ops == [
        "prepend_image_token"
    ]
    assert isinstance(built["v_missing00_9-L10"], SourceError) and built["v_missing00_9-L10"].reason == "missing_media"


def test_frames_are_sorted_by_name_not_by_number(tmp_path, hound):
    root = tmp_path / "hound"
    shutil.copytree(hound, root)
    folder = root / "train_300k" / "v_k0Lp2mQ9xYc"
    for f in folder.iterdir():
        f.unlink()
    for name, colour in (("frame_10.jpg", (250, 0, 0)), ("frame_2.jpg", (0, 250, 0)), ("frame_1.jpg", (0, 0, 250))):
        Image.new("RGB", (32, 24), colour).save(folder / name)  # unpadded names: "frame_10" sorts before "frame_2"
    cls = get_adapter("llava_hound")
    adapter = cls(root, cls.Params(frames=3))
    sample = adapter.build(next(r for r in adapter.list_records() if r.data["line"]["video"] == "v_k0Lp2mQ9xYc"))
    reds = [Image.open(io.BytesIO(m.data)).getpixel((16, 12))[0] > 200 for m in sample.media]
    assert reds == [False, True, False]  # frame_1, frame_10, frame_2


def test_tar_gz_chunks_give_the_same_frames_streamed_in_order(hound):
    cls = get_adapter("llava_hound")
    folders = _build_all(cls(hound))
    streamed = cls(hound, cls.Params(frames_from="archives"))
    records = list(streamed.list_records())
    chunks = [r.data["archive"]["chunk"] for r in records if "archive" in r.data]
    assert chunks == sorted(chunks)  # listed in archive order: one forward pass per chunk
    built = _build_all(streamed)
    assert built.keys() == folders.keys()
    for sid, sample in built.items():
        if isinstance(sample, SourceError):
            assert isinstance(folders[sid], SourceError)
            continue
        assert [m.data for m in sample.media] == [m.data for m in folders[sid].media], sid
    # a record whose frames lie behind the cursor restarts the stream
    back = cls(hound, cls.Params(frames_from="archives"))
    ordered = [r for r in back.list_records() if "archive" in r.data]
    last, first = ordered[-1], ordered[0]
    assert back.build(last).media and back.build(first).media


def test_a_corrupt_chunk_stops_the_build_naming_it(tmp_path, hound):
    root = tmp_path / "hound"
    shutil.copytree(hound, root)
    with tarfile.open(root / "train_300k" / "chunk_0.tar.gz", "r:gz") as tf:
        first = tf.getmembers()[0].name
    (root / "train_300k" / "chunk_0.tar.gz").write_bytes(b"\x1f\x8b\x08\x00broken")
    cls = get_adapter("llava_hound")
    with pytest.raises(BuildError, match="chunk_0.tar.gz"):
        list(cls(root, cls.Params(frames_from="archives")).list_records())
    assert first.startswith("./")


@pytest.mark.slow
def test_frame_folders_by_reference_resolve_for_the_trainer(ray_session, hound, tmp_path):
    """media: reference keeps the release's own form (the frame folder), no pixels in the shard;
    the trainer check reads the chosen frames back from the folder and checks their sha256."""
    from m4_pipeline.executor import run_build
    from m4_pipeline.inspect_shards import iter_samples, shard_paths, validate_shards
    from m4_pipeline.recipe import parse_recipe
    from m4_pipeline.train import CheckOptions, run_check

    framed = next(s for s in _build_all(get_adapter("llava_hound")(hound)).values() if not isinstance(s, Exception))
    source = {"name": "hound", "adapter": "llava_hound", "path": "llava_hound", "media": "reference"}
    out = tmp_path / "out"
    run_build(parse_recipe({"name": "hound_ref", "sources": [source]}), hound.parent, out, progress=False)
    samples = {s.key.split("-", 1)[1]: s for _, s, _ in iter_samples(shard_paths(out))}
    ref = samples[framed.key.split("-", 1)[1]].media
    assert [m.kind for m in ref] == ["video"] and ref[0].frames == [m.frame_index for m in framed.media]
    assert ref[0].ref["path"] == "train_300k/v_ZaQ3tL0aQ8w" and ref[0].data == b""
    assert validate_shards(out)["problems"] == []
    report = run_check(out, CheckOptions(run_model=False, workers=0))
    assert report["ok"] and report["passed"] == len(samples), report
