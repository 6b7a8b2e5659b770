import pytest

from m4_pipeline.recipe import RecipeError, Sampling, load_recipe, parse_recipe

BASE = {
    "name": "r",
    "version": "1",
    "sources": [{"name": "n", "adapter": "nlvr2", "params": {"splits": ["dev"]}}],
}


def with_changes(**changes):
    raw = {**BASE, "sources": [dict(BASE["sources"][0])]}
    for path, value in changes.items():
        target = raw
        *parents, last = path.split("__")
        for p in parents:
            target = target[int(p)] if isinstance(target, list) else target[p]
        target[last] = value
    return raw


def test_demo_recipe_loads_with_every_adapter(demo_recipe):
    assert [s.adapter for s in demo_recipe.sources] == ["nlvr2", "nextqa", "scanqa", "llava_mix", "vidstg"]
    assert demo_recipe.source("nextqa").params.frames == 8
    assert demo_recipe.output.shard_max_bytes == 64_000_000


@pytest.mark.parametrize(
    "raw,match",
    [
        ({**BASE, "shards": 3}, r"unknown key 'shards'"),
        (with_changes(sources__0__framez=3), r"sources\[0\]: unknown key 'framez'"),
        (with_changes(sources__0__params={"framez": 3}), r"sources\[0\]\.params: unknown key 'framez'"),
        (
            with_changes(sources__0__adapter="nlvr3"),
            r"unknown adapter 'nlvr3'; valid adapters: .*llava_mix, .*m4_release, .*nextqa",
        ),
        (with_changes(sources__0__sampling="some:3"), r"sampling 'some:3' is not one of"),
        (with_changes(sources__0__params={"splits": "dev"}), r"params\.splits: expected list"),
        ({**BASE, "output": {"shard_max_bytes": "lots"}}, r"output.shard_max_bytes: 'lots' is not a size"),
        ({"version": "1", "sources": []}, r"missing key 'name'"),
    ],
)
def test_bad_recipes_name_the_key(raw, match):
    with pytest.raises(RecipeError, match=match):
        parse_recipe(raw, where="r.yaml")


def test_load_recipe_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsources: [{adapter: nlvr2, colour: red}]\n")
    with pytest.raises(RecipeError, match=r"bad.yaml: sources\[0\]: unknown key 'colour'"):
        load_recipe(bad)


def test_sampling_modes_are_deterministic():
    items = list(range(100))
    assert Sampling.parse("all", 0, "x").select(items) == items
    assert Sampling.parse("first:5", 0, "x").select(items) == [0, 1, 2, 3, 4]
    a = Sampling.parse("random:10", 7, "x").select(items)
    assert a == Sampling.parse("random:10", 7, "x").select(items) == sorted(a) and len(set(a)) == 10
    assert a != Sampling.parse("random:10", 8, "x").select(items)
    assert Sampling.parse("random:500", 7, "x").select(items) == items
