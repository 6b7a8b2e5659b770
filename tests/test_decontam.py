"""Decontamination: every benchmark layout's miniature read back, planted contamination found."""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from m4_pipeline.dedup import DecontamConfig, build_index, contamination_summary, find_contamination, signature_of
from m4_pipeline.dedup.decontam import index_items
from m4_pipeline.dedup.evalsets import EVALSETS, BenchItem, BenchmarkLayoutError, read_evalset, write_miniature
from m4_pipeline.media.images import encode_jpeg
from m4_pipeline.media.video import probe, read_frames
from m4_pipeline.sample import Media, Sample, Turn
from m4_pipeline.synthetic import synthetic_image

EXPECTED_ITEMS = {
    "llava_interleave/multi_image_in_domain": 3,
    "llava_interleave/multi_image_out_domain": 3,
    "llava_interleave/multi_view_in_domain": 3,
    "st_align/stvg": 2,
    "st_align/svg": 2,
    "st_align/elc": 2,
    "charades_sta/test": 6,
    "refcoco/refcoco_testA": 4,
    "refcoco/refcoco+_testB": 4,
    "refcoco/refcocog_val": 4,
    "flickr30k/test": 1,
}


@pytest.fixture(scope="module")
def benchmarks(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("benchmarks")
    for name in EVALSETS:
        write_miniature(name, root / name)
    return {name: root / name for name in EVALSETS}


@pytest.fixture(scope="module")
def index(benchmarks):
    return build_index(benchmarks)


def sample(key: str, question: str, *, images=(), frames=(), record=None, family="m4") -> Sample:
    media = [Media("image", i, data, size=[64, 48]) for i, data in enumerate(images)]
    media += [Media("frame", len(images), data, frame_index=i, size=[160, 96]) for i, data in enumerate(frames)]
    placeholder = "<image>" * len(images) + ("<video>" if frames else "")
    convo = [Turn("human", f"{placeholder}\n{question}"), Turn("gpt", "An answer.")]
    return Sample(key=key, family=family, conversations=convo, record=record or {}, media=media)


def recompressed(path: Path, scale: float, quality: int) -> bytes:
    img = Image.open(path).convert("RGB")
    img = img.resize((round(img.width * scale), round(img.height * scale)), Image.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def test_each_miniature_reads_back_in_its_layout(benchmarks):
    counts: dict[str, int] = {}
    for name, root in benchmarks.items():
        for item in read_evalset(name, root):
            counts[item.benchmark] = counts.get(item.benchmark, 0) + 1
            assert item.questions and all(q.strip() for q in item.questions)
            assert all(p.is_file() for p in item.images + item.videos), item
    assert counts == EXPECTED_ITEMS
    assert (benchmarks["llava_interleave"] / "eval_images" / "Split2").is_dir()
    assert (benchmarks["st_align"] / "sources").is_dir() and (benchmarks["charades_sta"] / "Charades_v1_480").is_dir()
    line = (benchmarks["charades_sta"] / "charades_sta_test.txt").read_text().splitlines()[0]
    assert "##" in line and len(line.split("##")[0].split()) == 3
    refcoco = [i for i in read_evalset("refcoco", benchmarks["refcoco"]) if i.benchmark == "refcoco/refcoco_testA"]
    assert refcoco[0].image_ids == ["coco:500000"] and refcoco[0].images[0].name == "COCO_train2014_000000500000.jpg"


def test_malformed_layouts_fail_with_the_file_named(tmp_path):
    (tmp_path / "charades_sta_test.txt").write_text("3MSZA 24.3##no end time\n")
    with pytest.raises(BenchmarkLayoutError, match=r"charades_sta_test.txt line 1"):
        list(read_evalset("charades_sta", tmp_path))
    with pytest.raises(BenchmarkLayoutError, match="none of stvg.json"):
        list(read_evalset("st_align", tmp_path))
    (tmp_path / "multi_image_in_domain.json").write_text('{"not": "a list"}')
    with pytest.raises(BenchmarkLayoutError, match="expected a JSON list"):
        list(read_evalset("llava_interleave", tmp_path))
    valid = "valid benchmarks: charades_sta, flickr30k, llava_interleave, refcoco, st_align"
    with pytest.raises(KeyError, match=valid):
        read_evalset("mmbench", tmp_path)


def test_missing_benchmark_files_are_reported_not_dropped(tmp_path):
    item = BenchItem("x/test", "1", ["where is the red box in the room"], images=[tmp_path / "gone.jpg"])
    idx = index_items([item])
    assert idx.missing == [{"benchmark": "x/test", "item_id": "1", "path": str(tmp_path / "gone.jpg"),
                            "reason": "missing_file"}]  # fmt: skip
    assert idx.items == {"x/test": 1} and len(idx.questions) == 1


def test_planted_contamination_is_found_per_benchmark(benchmarks, index):
    assert index.items == EXPECTED_ITEMS and not index.missing
    il = benchmarks["llava_interleave"]
    st_video = benchmarks["st_align"] / "sources" / "0000" / "8000.mp4"
    info = probe(st_video)
    frames = [encode_jpeg(f.pixels, 80) for f in read_frames(st_video, list(range(0, info.num_frames, 3)), info)]
    coco = benchmarks["refcoco"] / "train2014" / "COCO_train2014_000000500101.jpg"
    training = [
        sample(
            "m4-near",
            "Describe both.",
            images=[recompressed(il / "eval_images/Split1/Spot-the-Diff/0001_0.jpg", 0.6, 50)],
        ),
        sample("m4-exact", "Describe.", images=[(il / "eval_images/Split1/ScanQA/0002_3.jpg").read_bytes()]),
        sample(
            "m4-question",
            "WHICH of the two pictures shows more red shapes?? Item 1",
            images=[encode_jpeg(np.asarray(synthetic_image(99)))],
        ),
        sample("st-video", "Track the object.", frames=frames, record={"video": "vidor/0000/8000.mp4"}, family="st"),
        sample(
            "st-prompt",
            "Find the red box that moves to the right. From <TEMP-INPUT> to <TEMP-INPUT>, where is it? Answer briefly.",
            images=[encode_jpeg(np.asarray(synthetic_image(98)))],
        ),
        sample(
            "charades-id", "When does the person open the door?", record={"video": "charades/Charades_v1_480/A9000.mp4"}
        ),
        sample(
            "coco-id",
            "Where is the dog?",
            images=[encode_jpeg(np.asarray(synthetic_image(97)))],
            record={"image": ["coco/train2017/000000500000.jpg"]},
        ),
        sample("coco-pixels", "Where is the cat?", images=[recompressed(coco, 0.8, 60)], record={"image": ["x/1.jpg"]}),
        sample(
            "clean",
            "How many birds are flying over the lake today?",
            images=[encode_jpeg(np.asarray(synthetic_image(96)))],
            record={"video": "other/zzz.mp4"},
        ),
    ]
    rows = find_contamination(index, [signature_of(s) for s in training])
    found = {(r["training_key"], r["benchmark"], r["benchmark_item"], r["reason"]) for r in rows}
    assert ("m4-near", "llava_interleave/multi_image_in_domain", "1", "image_near") in found
    assert ("m4-exact", "llava_interleave/multi_view_in_domain", "2002", "image_exact") in found
    assert ("m4-question", "llava_interleave/multi_image_out_domain", "1001", "question_exact") in found
    assert ("st-video", "st_align/stvg", "index 0", "video_id") in found
    assert ("st-video", "st_align/stvg", "index 0", "video_frames") in found
    assert ("st-prompt", "st_align/stvg", "index 0", "question_near") in found
    assert {k for k in found if k[0] == "charades-id"} == {
        ("charades-id", "charades_sta/test", "line 1", "video_id"),
        ("charades-id", "charades_sta/test", "line 2", "video_id"),
    }
    assert {r for k, b, _, r in found if k == "coco-id" and b == "refcoco/refcoco_testA"} == {"image_id"}
    assert ("coco-pixels", "refcoco/refcoco+_testB", "2", "image_near") in found
    assert not any(k[0] == "clean" for k in found)
    assert not any(k[0] == "st-video" and k[1] != "st_align/stvg" for k in found)  # no cross-video confusion

    summary = contamination_summary(rows, index)
    assert set(summary) == set(EXPECTED_ITEMS)
    assert summary["charades_sta/test"] == {"items": 6, "missing_files": 0, "training_samples": 1, "items_hit": 2,
                                            "by_reason": {"video_id": 1}}  # fmt: skip
    assert summary["llava_interleave/multi_image_in_domain"]["by_reason"]["image_near"] == 1
    row = next(r for r in rows if r["training_key"] == "m4-near")
    assert set(row) == {"benchmark", "benchmark_item", "training_key", "training_source", "reason", "detail"}


def test_question_threshold_and_generic_questions(index):
    short = sample("short", "What is this?", images=[encode_jpeg(np.asarray(synthetic_image(95)))])
    rows = find_contamination(index, [signature_of(short)], DecontamConfig(min_question_words=4))
    assert rows == []
