"""Small generic fixes to the adapter kit made for issue #10: SourceRoot's read log (the files a
unit read, fingerprinted for --resume), template fields whose source text is empty or not
Unicode, and records whose id is unusable."""

import pytest

from m4_pipeline.paths import AnnotationFileError, SourceRoot, UnsafePathError


def test_recording_notes_reads_not_probes(tmp_path):
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "a.json").write_text("[]")
    (tmp_path / "img.jpg").write_bytes(b"x")
    (tmp_path / "frames").mkdir()
    src = SourceRoot(tmp_path)
    src.path("img.jpg")  # outside a recording: nothing kept
    with src.recording() as reads:
        assert src.is_file("img.jpg") and src.exists("ann/a.json") and src.glob("*.jpg") == ["img.jpg"]
        assert reads == {}
        src.annotation("ann/a.json")
        src.file("img.jpg")
        src.folder("frames")
        with src.recording() as inner:
            src.read_bytes("img.jpg")
        assert inner == {"img.jpg": "media"}
    assert reads == {"ann/a.json": "annotation", "img.jpg": "media", "frames": "media"}
    assert src._reads is None


def test_recording_keeps_refusals_out(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    root = tmp_path / "root"
    root.mkdir()
    (root / "link.txt").symlink_to(outside)
    src = SourceRoot(root)
    with src.recording() as reads:
        for rel in ("../outside.txt", str(outside), "link.txt"):
            with pytest.raises(UnsafePathError):
                src.file(rel)
        with pytest.raises(AnnotationFileError, match="link.txt"):
            src.annotation("link.txt")
    assert reads == {}


# --- templates: the source text behind a template ------------------------------------------------


def test_a_template_field_that_is_empty_or_not_unicode_is_quarantined():
    from m4_pipeline.errors import SourceError
    from m4_pipeline.templates import render

    assert render("Q: {question} ({_options})", {"question": "why?", "_options": ""}) == "Q: why? ()"
    with pytest.raises(SourceError, match="field 'question' is empty") as err:
        render("Q: {question}\nAnswer with a letter.", {"question": "  "})
    assert err.value.reason == "empty_text"
    with pytest.raises(SourceError, match="lone surrogate") as err:
        render("{sentence}", {"sentence": "a \ud800 b"})
    assert err.value.reason == "invalid_annotation"


def test_drop_last_needs_its_separator():
    from m4_pipeline.errors import SourceError
    from m4_pipeline.templates import render

    assert render("{identifier|drop_last}", {"identifier": "dev-850-0-0"}) == "dev-850-0"
    with pytest.raises(SourceError, match="'identifier': drop_last: 1000 has no '-'") as err:
        render("{identifier|drop_last}-img0.png", {"identifier": 1000})  # an int identifier
    assert err.value.reason == "invalid_annotation"


def test_an_unusable_id_quarantines_its_record_instead_of_renaming_it(tmp_path):
    import json

    from m4_pipeline.adapters.base import RawRecord
    from m4_pipeline.adapters.llava_mix import LLaVAMix

    items = [{"id": "ok", "conversations": []}, {"id": "bad-\ud800", "conversations": []}, {"id": ["x"]}]
    (tmp_path / "llava_v1_5_mix665k.json").write_text(json.dumps(items))
    records = list(LLaVAMix(tmp_path).list_records())
    assert [r.error is None for r in records] == [True, False, False]
    assert records[1].reason == records[2].reason == "invalid_annotation" and "id" in records[1].error
    assert records[1].source_id == "llava_v1_5_mix665k-index 1"  # keyed by file and position
    again = RawRecord.from_json(records[1].to_json())
    assert again == records[1]
    with pytest.raises(Exception) as err:
        LLaVAMix(tmp_path).build(again)
    assert getattr(err.value, "reason", "") == "invalid_annotation"


def test_a_misspelt_declarative_choice_stops_the_recipe_load(tmp_path):
    from m4_pipeline.recipe import RecipeError, load_recipe

    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\nsources:\n  - {adapter: nextqa, params: {frame_strategy: random}}\n")
    with pytest.raises(RecipeError, match="frame_strategy: 'random' is not one of 'uniform', 'fps'"):
        load_recipe(recipe)
