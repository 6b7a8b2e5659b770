"""The one contract every registered source is held to, on the miniature of its real layout.

Parametrised over the registry: a new source (a Python module or a YAML declaration) is covered
the moment it is registered, with no list to edit here.
"""

import json
import shutil

import pytest

from m4_pipeline.adapters import get_adapter, sources
from m4_pipeline.errors import SourceError
from m4_pipeline.validate import validate_sample

# Sources whose miniature carries the release's known defects on purpose (test_release_audit.py).
PLANTED_DEFECTS = {"m4_release", "st_release"}


def build_all(adapter):
    ok, quarantined = [], []
    for record in adapter.list_records():
        try:
            ok.append((record, adapter.build(record)))
        except SourceError as err:
            quarantined.append((record, err.reason, str(err)))
    return ok, quarantined


@pytest.mark.parametrize("name", sources())
def test_source_contract(miniatures, name):
    cls = get_adapter(name)
    root = miniatures / name
    adapter = cls(root)
    records = list(adapter.list_records())
    assert records, f"{name}: its miniature lists no records"
    keys = [adapter.key_for(r) for r in records]
    assert len(keys) == len(set(keys)), f"{name}: keys collide: {sorted(k for k in keys if keys.count(k) > 1)[:3]}"
    assert keys == [adapter.key_for(r) for r in cls(root).list_records()], f"{name}: keys are not stable"
    ok, quarantined = build_all(adapter)
    assert len(ok) >= 2, f"{name}: only {len(ok)} sample(s) built; quarantined: {quarantined[:3]}"
    if name not in PLANTED_DEFECTS:
        unexpected = [q for q in quarantined if q[1] not in ("filtered",)]
        assert len(unexpected) <= len(records) // 2, f"{name}: miniature mostly fails: {unexpected[:3]}"
    for record, sample in ok:
        assert validate_sample(sample) == [], f"{name} {record.locator}: {validate_sample(sample)[:2]}"
        prov = sample.provenance
        assert prov.dataset == name and prov.adapter == name
        assert (root / prov.source_file).is_file(), f"{name}: provenance names a missing file {prov.source_file}"
        assert prov.locator == record.locator and prov.locator
        assert sample.key.startswith(f"{name}-") and all(m.data for m in sample.media)
        assert sample.media, f"{name} {record.locator}: a sample without media"
        json.dumps(sample.record)  # the record is plain JSON


def _corrupt(path):
    """Append bad items in the file's own format; returns how many were added (0: format skipped)."""
    suffix = path.suffix.lower()
    if suffix not in (".json", ".jsonl", ".csv", ".tsv"):
        return 0  # binary or structured formats (parquet, pickle, XML, archives) have no appendable corruption
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        return 0
    if suffix == ".jsonl" or (suffix == ".json" and text.lstrip()[:1] == "{" and "\n{" in text.strip()):
        path.write_text(text.rstrip("\n") + '\n{"not json\n[1, 2]\n')
        return 2
    if suffix == ".json" and text.lstrip().startswith("["):
        items = json.loads(text)
        items += ["garbage", [1, 2]]
        path.write_text(json.dumps(items))
        return 2
    if suffix in (".csv", ".tsv"):
        sep = "\t" if suffix == ".tsv" else ","
        path.write_text(text.rstrip("\n") + f"\nonly{sep}two\n")
        return 1
    return 0


@pytest.mark.parametrize("name", sources())
def test_corrupted_annotations_quarantine_with_reasons(miniatures, tmp_path, name):
    cls = get_adapter(name)
    root = tmp_path / name
    shutil.copytree(miniatures / name, root)
    before = list(cls(root).list_records())
    added = sum(_corrupt(root / rel) for rel in sorted({r.source_file for r in before}))
    if not added:
        pytest.skip(f"{name}: annotation format without an appendable corruption (parquet, XML, archives)")
    adapter = cls(root)
    after = list(adapter.list_records())
    old = {(r.source_file, r.locator): r.source_id for r in before}
    assert {(r.source_file, r.locator): r.source_id for r in after if (r.source_file, r.locator) in old} == old
    bad = 0
    for record in (r for r in after if (r.source_file, r.locator) not in old):
        with pytest.raises(SourceError) as err:  # never another exception type
            adapter.build(record)
        assert err.value.reason in ("parse_error", "invalid_annotation", "empty_text", "validation"), str(err.value)
        bad += 1
    assert bad >= 1, f"{name}: the corrupted items were not listed as records"
