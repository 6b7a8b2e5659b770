"""The RefCOCO and Flickr30k benchmarks read in every published form, the same items from each."""

import datetime
import pickle
from collections import Counter

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
