"""The RefCOCO and Flickr30k benchmarks read in every published form, the same items from each."""

import datetime
import pickle
from collections import Counter

import numpy as np
import pytest

from m4_pipeline.adapters.st_image import flickr_mini, refer_mini
from m4_pipeline.dedup.evalsets import BenchmarkLayoutError, read_evalset

EXPECTED = Counter({
    ("refcoco/refcoco_testA", "woman left", "coco:25"),
    ("refcoco/refcoco_testB", "the car in front", "coco:34"),
    ("refcoco/refcoco_val", "table by the window", "coco:30"),
    ("refcoco/refcoco+_testB", "guy in blue", "coco:9"),
    ("refcoco/refcoco+_val", "ball", "coco:9"),
    ("refcoco/refcocog_test", "a silver car parked in front of the house", "coco:34"),
    ("refcoco/refcocog_val", "a small red ball on the grass", "coco:9"),
})  # fmt: skip


def items(name, root):
    return Counter((i.benchmark, i.questions[0], i.image_ids[0]) for i in read_evalset(name, root))


@pytest.mark.parametrize("form", ["refer", "mdetr", "parquet"])
def test_refcoco_eval_splits_in_every_form(tmp_path, form):
    if form == "mdetr":
        refer_mini.write_mdetr(tmp_path, splits=("train", "val", "testA", "testB", "test"))
    else:
        getattr(refer_mini, f"write_{form}")(tmp_path)
    refer_mini.write_images(tmp_path)
    assert items("refcoco", tmp_path) == EXPECTED  # train rows never; jxu124's "test" file is testA
    first = next(read_evalset("refcoco", tmp_path))
    assert first.images[0].is_file() and first.images[0].parent.name == "train2014"


def test_refcoco_eval_pickle_with_a_class_is_refused(tmp_path):
    refer_mini.write_refer(tmp_path, ("refcoco",))
    refs = [{"split": "val", "image_id": 9, "date": datetime.date(2016, 1, 1)}]  # names datetime.date
    (tmp_path / "refcoco" / "refs(unc).p").write_bytes(pickle.dumps(refs))
    with pytest.raises(BenchmarkLayoutError, match=r"refused.*datetime\.date"):
        list(read_evalset("refcoco", tmp_path))
    with pytest.raises(BenchmarkLayoutError, match="no RefCOCO evaluation data"):
        list(read_evalset("refcoco", tmp_path / "empty"))


@pytest.mark.parametrize("form", ["entities", "mdetr"])
def test_flickr30k_test_images_in_both_forms(tmp_path, form):
    getattr(flickr_mini, f"write_{form}")(tmp_path)
    (found,) = list(read_evalset("flickr30k", tmp_path))
    assert found.benchmark == "flickr30k/test" and found.item_id == "1007129816"
    assert found.image_ids == ["flickr30k:1007129816"] and found.images[0].is_file()
    assert found.questions == ["A man with pierced ears is wearing glasses and an orange hat ."]


def test_a_training_sample_on_a_flickr30k_test_image_is_found_by_its_id(tmp_path):
    from m4_pipeline.dedup import build_index, find_contamination, signature_of
    from m4_pipeline.media.images import encode_jpeg
    from m4_pipeline.sample import Media, Sample, Turn
    from m4_pipeline.synthetic import synthetic_image

    flickr_mini.write_entities(tmp_path / "flickr30k")
    index = build_index({"flickr30k": tmp_path / "flickr30k"})
    image = [Media("image", 0, encode_jpeg(np.asarray(synthetic_image(5))), "jpg")]
    turns = [Turn("human", "<image>\nDescribe the picture in detail."), Turn("gpt", "A street at night.")]
    named = {"test": "flickr30k/flickr30k-images/1007129816.jpg", "train": "flickr30k/flickr30k-images/1000092795.jpg"}
    training = [Sample(key, "st", turns, record={"image": path}, media=image) for key, path in named.items()]
    rows = find_contamination(index, [signature_of(s) for s in training])
    assert {(r["training_key"], r["benchmark"], r["reason"]) for r in rows} == {("test", "flickr30k/test", "image_id")}
