"""The DEMON and Mantis-Instruct collections: the awkward parts of their layouts, pinned."""

import json
import shutil

import pytest

from m4_pipeline.adapters import get_adapter
from m4_pipeline.adapters.collections.demon import SUBSETS as DEMON_SUBSETS
from m4_pipeline.adapters.collections.mantis import SUBSETS as MANTIS_SUBSETS
from m4_pipeline.adapters.placement import moves_to_front, tokens_to_front
from m4_pipeline.errors import BuildError, SourceError
from m4_pipeline.recipe import RecipeError, build_params
from m4_pipeline.validate import validate_sample


def _by_id(adapter):
    return {r.source_id: r for r in adapter.list_records()}


@pytest.fixture(scope="module")
def demon(miniatures):
    return get_adapter("demon")(miniatures / "demon")


@pytest.fixture(scope="module")
def mantis(miniatures):
    return get_adapter("mantis")(miniatures / "mantis")


def test_demon_covers_the_21_m4_datasets(demon):
    built = {}
    for record in demon.list_records():
        try:
            sample = demon.build(record)
        except SourceError:
            continue
        built[sample.record["metadata"]["dataset"]] = sample
        assert validate_sample(sample) == []
    assert len(DEMON_SUBSETS) == 21 and set(built) == {s.dataset for s in DEMON_SUBSETS.values()}
    assert "FlintstonesSV" in built and "Flintstones" not in built  # the release's zip spelling
    assert built["FlintstonesSV"].record["image"][0].startswith("FlintstonesSV/images/")


def test_demon_placeholders_become_image_tokens_in_order(demon, miniatures):
    records = _by_id(demon)
    cloze = demon.build(records["RecipeQA_VisualCloze-0"])
    human = cloze.conversations[0].value
    assert "{image#" not in human and human.count("<image>") == 7
    assert "Choice List:['Image A: <image>', 'Image B: <image>']" in human  # placeholders inside the options
    assert cloze.record["choice_list"] == ["Image A", "Image B"]
    webqa = demon.build(records["WebQA-1"])  # a {table#1} counts as an image
    assert webqa.conversations[0].value.count("<image>") == 2 and len(webqa.media) == 2
    # the instruction is the one task_instruction_id chooses, and it is metadata.task_instruction
    raw = json.loads((miniatures / "demon" / "WebQA" / "full" / "full.json").read_text())
    chosen = raw["metadata"]["task_instruction"][raw["data"][1]["task_instruction_id"]]
    assert webqa.conversations[0].value.startswith(chosen) and webqa.record["metadata"]["task_instruction"] == chosen
    assert webqa.record["sample_id"] == 1  # DEMON's own id


def test_demon_image_order_follows_the_placeholders(tmp_path, miniatures):
    root = tmp_path / "demon"
    shutil.copytree(miniatures / "demon" / "IEdit", root / "IEdit")
    path = root / "IEdit" / "full" / "full.json"
    raw = json.loads(path.read_text())
    raw["data"][0]["task_instance"]["context"] = "Target Image:{image#2} Source Image:{image#1}"
    raw["data"][1]["task_instance"]["context"] = "{image#1}{image#1}"  # repeated
    raw["data"][3]["task_instance"]["context"] = "{image#1}{image#3}"  # out of range
    path.write_text(json.dumps(raw))
    adapter = get_adapter("demon")(root)
    records = _by_id(adapter)
    first = adapter.build(records["IEdit-0"])
    paths = raw["data"][0]["task_instance"]["images_path"]
    assert first.record["image"] == [f"IEdit/images/{paths[1]}", f"IEdit/images/{paths[0]}"]
    for sid, reason in (
        ("IEdit-1", "invalid_annotation"),
        ("IEdit-2", "validation"),
        ("IEdit-3", "invalid_annotation"),
    ):
        with pytest.raises(SourceError) as err:
            adapter.build(records[sid])
        assert err.value.reason == reason, sid


def test_demon_alfred_question_type_and_int_responses(demon):
    records = _by_id(demon)
    alfred = demon.build(records["ALFRED-0"])
    assert alfred.record["metadata"]["question_type"] == "open-ended"
    assert "question_type:''->open-ended" in alfred.provenance.ops
    vizwiz = demon.build(records["VizWiz-0"])
    assert vizwiz.conversations[1].value == "1"  # an int response becomes text


def test_demon_subsets_are_checked():
    with pytest.raises(RecipeError, match="unknown subset"):
        build_params(get_adapter("demon").Params, {"subsets": ["Flintstones"]}, "recipe")


def test_demon_reads_category_folders(tmp_path, miniatures):
    root = tmp_path / "demon"
    shutil.copytree(miniatures / "demon" / "VIST", root / "Visual Storytelling" / "VIST")
    cls = get_adapter("demon")
    adapter = cls(root, cls.Params(subset_dir="{category}/{folder}/{split}"))
    assert [adapter.build(r).record["metadata"]["dataset"] for r in adapter.list_records()][0] == "VIST"
    with pytest.raises(BuildError):
        cls(root).preflight()  # no subset where the default layout looks


def test_mantis_covers_its_configs_with_roles_mapped(mantis):
    built = {}
    for record in mantis.list_records():
        try:
            sample = mantis.build(record)
        except SourceError:
            continue
        built.setdefault(sample.record["metadata"]["dataset"], sample)
        assert validate_sample(sample) == [] and {t.role for t in sample.conversations} <= {"human", "gpt"}
    assert set(built) == {c.dataset for c in MANTIS_SUBSETS.values()}


def test_mantis_prepends_missing_tokens_as_the_trainer_does(mantis):
    records = _by_id(mantis)
    star = mantis.build(records["star-starV0A1"])
    assert star.conversations[0].value.startswith("<image>" * 8 + "What did the person do first?")
    assert sum(t.value.count("<image>") for t in star.conversations) == 8 and len(star.media) == 8
    assert "prepend_image_tokens:8" in star.provenance.ops and len(star.conversations) == 4  # QAs merged per video
    iconqa = mantis.build(records["iconqa-iconqa_choose_img_0"])  # tokens inline in the options: none added
    assert "A. <image>" in iconqa.conversations[0].value and not iconqa.provenance.ops
    with pytest.raises(SourceError) as err:  # more tokens than images
        mantis.build(records["iconqa-iconqa_fill_in_blank_2"])
    assert err.value.reason == "validation"
    cls = get_adapter("mantis")
    plain = cls(mantis.root, cls.Params(prepend_missing_tokens=False))
    unprepended = plain.build(_by_id(plain)["star-starV0A1"])
    assert "0 placeholder(s)" in str(validate_sample(unprepended)[0])  # the validator would catch it


def test_mantis_reads_split_zips_outer_folders_and_parquet_bytes(mantis, miniatures):
    root = miniatures / "mantis"
    assert (root / "nlvr2" / "train_images_zips.txt").read_text().split() == ["train_images_part0.zip",
                                                                            "train_images_part1.zip"]  # fmt: skip
    records = _by_id(mantis)
    nlvr2 = [mantis.build(r) for sid, r in records.items() if sid.startswith("nlvr2-")]
    assert len(nlvr2) == 3 and all(len(s.media) == 2 for s in nlvr2)  # members from both part zips
    assert {s.record["metadata"]["question_type"] for s in nlvr2} == {"multi-choice", "open-ended"}  # by answer
    co = mantis.build(records["coinstruct-coinstruct_0"])  # zip members under an extra outer folder
    assert co.record["image"] == ["coinstruct/coinstruct/0_0.jpg", "coinstruct/coinstruct/0_1.jpg"]
    assert not list((root / "dreamsim").glob("*.zip"))  # parquet mode: the bytes are in the rows
    dream = mantis.build(records["dreamsim-dream_sim_nights_0"])
    assert len(dream.media) == 3 and dream.record["metadata"]["question_type"] == "open-ended"


def test_placement_mix_is_deterministic_and_recorded(mantis):
    turns = [("human", "Source Image: <image>\nTarget Image: <image>\nWhat changed?"), ("gpt", "A hat.")]
    assert tokens_to_front(turns)[0] == ("human", "<image><image>\nSource Image:\nTarget Image:\nWhat changed?")
    keys = [f"k{i}" for i in range(2000)]
    share = sum(moves_to_front(k, 0.3) for k in keys) / len(keys)
    assert 0.25 < share < 0.35 and [moves_to_front(k, 0.3) for k in keys] == [moves_to_front(k, 0.3) for k in keys]
    cls = get_adapter("mantis")
    front = cls(mantis.root, cls.Params(front_fraction=1.0, subsets=["iconqa"]))
    sample = front.build(_by_id(front)["iconqa-iconqa_choose_img_0"])
    assert sample.conversations[0].value.startswith("<image>" * 3 + "\n") and "placement:front" in sample.provenance.ops
    assert validate_sample(sample) == []
