"""ST image sources on their miniatures: boxes worked out by hand, the three RefCOCO forms, the
safe pickle, Flickr30k's 1-based boxes, GranD, MUSE masks, and VidSTG's SVG and ELC."""

import json
import pickle
from collections import OrderedDict

import pytest

from m4_pipeline.adapters import get_adapter
from m4_pipeline.adapters.st_image import refer_mini
from m4_pipeline.adapters.st_image.flickr30k import parse_sentence
from m4_pipeline.adapters.st_image.masks import decode_rle_string, encode_rle_string, mask_runs, segmentation_box
from m4_pipeline.errors import BuildError, SourceError
from m4_pipeline.readers import UnsafePickleError
from m4_pipeline.validate import validate_sample

W_OUT, H_OUT = "spatial_width_output_locations", "spatial_height_output_locations"
W_IN, H_IN = "spatial_width_input_locations", "spatial_height_input_locations"
T_IN, T_OUT = "temporal_input_locations", "temporal_output_locations"


def built(name, root, **params):
    """{source_id: sample or quarantine reason} of a source's miniature."""
    cls = get_adapter(name)
    adapter = cls(root, cls.Params(**params))
    adapter.preflight()
    out = {}
    for record in adapter.list_records():
        try:
            sample = adapter.build(record)
        except SourceError as err:
            out[record.source_id] = err.reason
            continue
        assert validate_sample(sample) == [], validate_sample(sample)
        out[record.source_id] = sample
    return out


def boxes(sample, w=W_OUT, h=H_OUT):
    v = sample.record["variables"]
    return [[v[w][i], v[h][i], v[w][i + 1], v[h][i + 1]] for i in range(0, len(v[w]), 2)]


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    root = tmp_path_factory.mktemp("st_image")
    for name in ("refcoco_refer", "refcoco_mdetr", "refcoco_parquet", "flickr30k_entities", "flickr30k_mdetr",
                 "grand", "muse", "vidstg"):  # fmt: skip
        get_adapter(name).write_miniature(root / name)
    return root


# --- RefCOCO family ---------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["refcoco_refer", "refcoco_mdetr", "refcoco_parquet"])
def test_refcoco_boxes_by_hand_in_every_form(mini, form):
    samples = {s.conversations[0].value: s for s in built(form, mini / form).values() if not isinstance(s, str)}
    by_text = {text.split("\n", 1)[1]: s for text, s in samples.items()}
    edge = next(s for t, s in by_text.items() if "man on the right" in t)
    # xywh [100, 20, 60, 100] on 160x120: x1 = 100/160, y1 = 20/120, x2 = 160/160 (the right edge), y2 = 120/120
    assert boxes(edge) == [[0.625, 0.167, 1.0, 1.0]]
    assert edge.record["image"] == "coco/train2014/COCO_train2014_000000000009.jpg"
    assert edge.conversations[1].value.endswith("[<WIDTH-OUTPUT><HEIGHT-OUTPUT><WIDTH-OUTPUT><HEIGHT-OUTPUT>].")
    ball = next(s for t, s in by_text.items() if "small red ball" in t)
    # [10.5, 30.25, 40, 50]: 10.5/160 = 0.065625, 30.25/120 = 0.2521, 50.5/160 = 0.3156, 80.25/120 = 0.66875
    assert boxes(ball) == [[0.066, 0.252, 0.316, 0.669]]
    texts = " ".join(by_text)
    assert "caf\xe9 table" in texts  # the Python 2 latin-1 byte string, decoded
    for held_out in ("woman left", "the car in front", "table by the window"):  # testA, testB, val rows
        assert held_out not in texts


def test_refcoco_forms_agree_and_quarantine_a_resized_image(mini):
    results = {form: built(form, mini / form) for form in ("refcoco_refer", "refcoco_mdetr", "refcoco_parquet")}
    for form, out in results.items():
        assert sorted(v for v in out.values() if isinstance(v, str)) == ["bad_media"], form
    values = {form: sorted(json.dumps(s.record["variables"]) for s in out.values() if not isinstance(s, str))
              for form, out in results.items()}  # fmt: skip
    assert values["refcoco_refer"] == values["refcoco_mdetr"] == values["refcoco_parquet"]


def test_reg_gives_the_box_and_answers_the_expression(mini):
    out = built("refcoco_refer", mini / "refcoco_refer", dataset="refcocog", task="reg")
    sample = out["refcocog-s34"]
    assert "[<WIDTH-INPUT><HEIGHT-INPUT><WIDTH-INPUT><HEIGHT-INPUT>]" in sample.conversations[0].value
    assert sample.conversations[1].value == "the man standing on the right side"
    assert boxes(sample, W_IN, H_IN) == [[0.625, 0.167, 1.0, 1.0]] and not sample.record["variables"][W_OUT]
    assert set(out) == {"refcocog-s31", "refcocog-s34"}  # train refs only; val and test are held out


def test_a_pickle_naming_a_class_is_refused(tmp_path):
    refer_mini.write_refer(tmp_path, ("refcoco",))
    evil = [OrderedDict(ref_id=1, split="train", sentences=[])]  # plain pickle names collections.OrderedDict
    (tmp_path / "refcoco" / "refs(unc).p").write_bytes(pickle.dumps(evil, protocol=2))
    adapter = get_adapter("refcoco_refer")(tmp_path)
    with pytest.raises(UnsafePickleError, match=r"refs\(unc\)\.p.*collections\.OrderedDict"):
        list(adapter.list_records())
    assert isinstance(UnsafePickleError("x", "y"), BuildError)  # it stops the build, it is not a record


def test_training_rows_come_from_train_splits_only(mini, tmp_path):
    cls = get_adapter("refcoco_mdetr")
    with pytest.raises(BuildError, match="evaluation split"):
        cls(
            mini / "refcoco_mdetr", cls.Params(annotation_file="mdetr_annotations/finetune_{dataset}_val.json")
        ).preflight()
    # jxu124's "test" file is RefCOCO testA: its rows carry split testA and are never listed
    out = built("refcoco_parquet", mini / "refcoco_parquet", files="{repo}/data/*.parquet")
    assert set(out) == {"refcoco-s1", "refcoco-s2", "refcoco-s3", "refcoco-s6", "refcoco-s8"}


# --- Flickr30k Entities --------------------------------------------------------------------------------


def test_sentence_markup_parses_into_text_and_spans():
    text, phrases = parse_sentence("[/EN#18/people A child] in [/EN#19/clothing/other a pink dress] .")
    assert text == "A child in a pink dress ."
    assert phrases == [(0, 7, "18", ["people"]), (11, 23, "19", ["clothing", "other"])]
    assert text[11:23] == "a pink dress"


@pytest.mark.parametrize("form", ["flickr30k_entities", "flickr30k_mdetr"])
def test_flickr_one_based_boxes_by_hand(mini, form):
    out = built(form, mini / form)
    child = next(s for k, s in out.items() if k.startswith("1000092795-") and k.endswith("0"))
    # 1-based xyxy [1, 1, 100, 75] on 200x150 -> 0-based [0, 0, 99, 74] -> [0, 0, 0.495, 0.4933]
    # two dogs: [110, 20, 150, 60] and [140, 50, 200, 150] merged -> [109, 19, 199, 149] / (200, 150)
    assert boxes(child) == [[0.0, 0.0, 0.495, 0.493], [0.145, 0.26, 0.395, 0.793], [0.545, 0.127, 0.995, 0.993]]
    answer = child.conversations[1].value
    assert answer.startswith("A child [<WIDTH-OUTPUT>") and "in an entry way ." in answer  # the scene stays text
    assert child.record["image"] == "flickr30k/flickr30k-images/1000092795.jpg"
    reasons = sorted(v for v in out.values() if isinstance(v, str))
    assert reasons == (["filtered", "missing_media", "parse_error"] if form == "flickr30k_entities"
                       else ["filtered", "missing_media"])  # fmt: skip


def test_flickr_separate_boxes_and_notvisual_phrases(mini):
    out = built("flickr30k_entities", mini / "flickr30k_entities", merge_boxes=False, task="gcg")
    child = out["1000092795-0"]
    assert boxes(child)[2:] == [[0.545, 0.127, 0.745, 0.393], [0.695, 0.327, 0.995, 0.993]]  # the two dogs
    assert (
        "two dogs [<WIDTH-OUTPUT><HEIGHT-OUTPUT><WIDTH-OUTPUT><HEIGHT-OUTPUT>], [<WIDTH" in child.conversations[1].value
    )
    girl = out["1000092795-1"].conversations[1].value  # chain 0 (notvisual) and a nobndbox chain: no box
    assert girl.endswith("climbs the stairs near a mat .") and girl.count("[<WIDTH-OUTPUT>") == 1
    assert "Briefly describe" in child.conversations[0].value or "short caption" in child.conversations[0].value


# --- GranD and MUSE ------------------------------------------------------------------------------------


def test_grand_rec_reg_dgc_by_hand(mini):
    rec = built("grand", mini / "grand", task="rec")
    table = rec["sa_10036163-o1"]
    # xyxy [150, 40, 240, 120] on 240x160: the right edge; the "Assistant:" prefix is GLaMM's stray text
    assert boxes(table) == [[0.625, 0.25, 1.0, 0.75]] and "a wooden dining table" in table.conversations[0].value
    assert "sa_10036163-o2" not in rec  # no attribute: no referring expression
    reg = built("grand", mini / "grand", task="reg")
    assert reg["sa_10036163-o0"].conversations[1].value == "the person is standing"  # names the label "person"
    dgc = built("grand", mini / "grand", task="dgc")
    caption = dgc["sa_10036163-c0"]
    assert caption.conversations[1].value.startswith("A woman in a red coat [<WIDTH-OUTPUT>")
    assert boxes(caption)[2] == [0.0, 0.0, 1.0, 0.375]  # a floating object (the wall)
    assert dgc["sa_10036163-c1"] == "filtered" and boxes(dgc["sa_10036241-c0"]) == [[0.125, 0.15, 0.75, 0.95]]


def test_masks_to_boxes_by_hand():
    mask = [[0, 0, 0, 0, 0], [0, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 0, 0, 0]]
    runs = mask_runs(mask)  # column-major: 5 zeros, rows 1-2 of column 1, ...
    assert runs == [5, 2, 2, 2, 3, 1, 5]
    assert encode_rle_string(runs) == "52201O2" and decode_rle_string("52201O2") == runs
    assert segmentation_box({"size": [4, 5], "counts": "52201O2"}, height=4, width=5) == [1.0, 1.0, 4.0, 3.0]
    assert segmentation_box({"size": [4, 5], "counts": runs}, height=4, width=5) == [1.0, 1.0, 4.0, 3.0]
    assert segmentation_box([[2, 3, 12, 3, 12, 23]], height=30, width=40) == [2.0, 3.0, 12.0, 23.0]
    with pytest.raises(SourceError, match="covers 15 pixels"):
        segmentation_box({"size": [4, 5], "counts": runs[:-1]}, height=4, width=5)


def test_muse_seg_markers_become_boxes(mini):
    out = built("muse", mini / "muse")
    first = out["COCO_train2014_000000000077-0"]
    turns = [t.value for t in first.conversations]
    assert turns[0].startswith("<image>\nWho is holding") and "<image>" not in turns[2]
    assert turns[1] == ("The person [<WIDTH-OUTPUT><HEIGHT-OUTPUT><WIDTH-OUTPUT><HEIGHT-OUTPUT>] holds the umbrella "
                        "[<WIDTH-OUTPUT><HEIGHT-OUTPUT><WIDTH-OUTPUT><HEIGHT-OUTPUT>] over their head.")  # fmt: skip
    # bbox xywh [2, 3, 10, 20]; polygon [14..30, 1..9]; compressed RLE of x 20..31, y 5..14 -> [20, 5, 32, 15]
    assert boxes(first) == [[0.05, 0.1, 0.3, 0.767], [0.35, 0.033, 0.75, 0.3], [0.5, 0.167, 0.8, 0.5]]
    url = out["000000000139-1"]
    assert url.record["image"] == "coco/train2017/000000000139.jpg" and boxes(url)[0] == [0.5, 0.167, 0.8, 0.5]
    assert out["000000000285-2"] == "filtered" and out["COCO_train2014_000000000077-3"] == "invalid_annotation"


# --- VidSTG: SVG and ELC ---------------------------------------------------------------------------------


def test_vidstg_svg_and_elc_by_hand(mini):
    # video 0: 150 frames, used_segment [5, 150) -> split [5, 149]; temporal_gt [37, 75) -> frames 37..74
    # start (37 - 5) / 144 = 0.2222, end (74 - 5) / 144 = 0.4792; the box at frame 37: x = int(37/149 * 136) = 33
    stvg = built("vidstg", mini / "vidstg", task="stvg")["train-0-c0"].record["variables"]
    svg = built("vidstg", mini / "vidstg", task="svg")["train-0-c0"].record["variables"]
    elc_all = built("vidstg", mini / "vidstg", task="elc")
    elc = elc_all["train-0-c0"].record["variables"]
    assert stvg[T_OUT][:2] == [0.222, 0.479] and not stvg[T_IN]
    assert svg[T_IN] == [0.222, 0.479] and svg[T_OUT] == stvg[T_OUT][2:]  # span in, tube out
    assert elc[T_IN] == [0.222] and elc[W_IN] == [0.206, 0.356] and elc[H_IN] == [0.333, 0.583]
    assert elc[T_OUT][0] == 0.479 and elc[T_OUT][1:] == stvg[T_OUT][2:]  # "Ends in <e>", then the tube
    answer = elc_all["train-0-c0"].conversations[1].value
    assert answer.startswith(
        "Ends in <TEMP-OUTPUT>, the toy box moves to the right. Object bounding box: <TEMP-OUTPUT>:"
    )
    assert set(elc_all) == {"train-0-c0", "train-1-c0", "train-2-c0"}  # declarative captions only
    cls = get_adapter("vidstg")
    with pytest.raises(BuildError, match="declarative captions only"):
        cls(mini / "vidstg", cls.Params(task="elc", sentences=["questions"])).preflight()


def test_an_exif_rotated_image_is_quarantined_not_paired_with_stale_boxes(tmp_path):
    from PIL import Image

    get_adapter("refcoco_mdetr").write_miniature(tmp_path)
    path = tmp_path / "train2014" / "COCO_train2014_000000000009.jpg"
    img = Image.open(path)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees": the pipeline would turn it upright, the boxes would not follow
    img.save(path, "JPEG", exif=exif)
    out = built("refcoco_mdetr", tmp_path)
    assert [out[k] for k in ("refcoco-1000", "refcoco-1001", "refcoco-1002")] == ["bad_media"] * 3
    adapter = get_adapter("refcoco_mdetr")(tmp_path)
    record = next(r for r in adapter.list_records() if r.source_id == "refcoco-1000")
    with pytest.raises(SourceError, match="EXIF rotation"):
        adapter.build(record)
