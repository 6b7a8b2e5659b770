"""Mantis-Instruct (HF ``TIGER-Lab/Mantis-Instruct``, main revision): the M4-Instruct sets it carries.

Layout, one folder per config [V: Mantis ``data/upload_conv_dataset_to_hf.py``, HF tree]::

    <config>/{split}-00000-of-00001.parquet   id: string, images: list<{bytes: binary, path: string}>,
                                              conversation: list<{role, content}>, source: string
    <config>/{split}_images.zip               images, member name = the row's images[].path
    <config>/{split}_images_part<N>.zip       ... or several parts, named one per line in
    <config>/{split}_images_zips.txt

In zip mode ``bytes`` is null and ``path`` names the zip member; a config uploaded in parquet
mode carries the bytes instead (both are read). Zips are read in place (``readers.ArchiveSet``).
Roles ``user`` / ``assistant`` become ``human`` / ``gpt``. Where a conversation holds fewer
``<image>`` than images (nextqa and star add none), the missing tokens are prepended to the first
message, as the Mantis trainer does [V ``mantis/train/data.py``]; more tokens than images
quarantines the row. The M4 names, question types and the image path prefix (the release's zip
folder; its inner layout is not known [U]) come from the subset table; the per-config question
type rule is inferred [I] (``by_answer``: multi-choice when the answer is an option letter).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from ...errors import BuildError
from ...readers import ArchiveSet, Part
from ...sample import Sample
from ...synthetic import synthetic_image
from .. import fields as F
from ..base import Adapter, RawRecord, SourceError, SourceParams
from ..placement import IMAGE_TOKEN, place

ROLES = {"user": "human", "assistant": "gpt", "human": "human", "gpt": "gpt"}
_LETTER_ANSWER = re.compile(r"^\s*(?:answer:\s*)?(?:image\s+)?\(?[A-Z]\)?(?:[.:)]|\s*$)", re.I)


class Config(NamedTuple):
    dataset: str  # M4 metadata.dataset (the OneVision table's name) [I: the release's value is not known]
    question_type: str  # open-ended | multi-choice | by_answer (per row, from the last answer)


SUBSETS: dict[str, Config] = {
    "nlvr2": Config("NLVR2", "by_answer"),
    "multi_vqa": Config("Multi-VQA", "open-ended"),
    "iconqa": Config("IconQA", "by_answer"),
    "coinstruct": Config("Co-Instruct", "open-ended"),
    "contrastive_caption": Config("Contrastive Caption", "open-ended"),
    "imagecode": Config("ImageCoDe", "by_answer"),
    "dreamsim": Config("DreamSim", "by_answer"),
    "star": Config("STAR", "multi-choice"),
    "nextqa": Config("NExT-QA", "multi-choice"),
}


@dataclass
class Params(SourceParams):
    subsets: list[str] = field(default_factory=list)  # configs of SUBSETS; [] = every one present
    split: str = "train"
    image_prefix: str = "{config}"  # M4 image path prefix: the release's zip folder [U: inner layout]
    prepend_missing_tokens: bool = True  # the Mantis trainer's rule
    front_fraction: float = 0.0  # share of samples with every <image> moved to the front [U]

    def __post_init__(self):
        unknown = [s for s in self.subsets if s not in SUBSETS]
        if unknown:
            raise BuildError(f"mantis: unknown config(s) {unknown}; known: {', '.join(SUBSETS)}")


class Mantis(Adapter):
    name = "mantis"
    family = "m4"
    Params = Params
    description = "Mantis-Instruct collection (per-config parquet + {split}_images zips, read in place)"
    reader = "parquet"
    reader_options = {"columns": ["id", "images", "conversation", "source"]}

    def _configs(self) -> list[str]:
        if self.params.subsets:
            return list(self.params.subsets)
        return [c for c in SUBSETS if self.src.glob(f"{c}/{self.params.split}-*.parquet")]

    def annotation_files(self) -> list[str]:
        out = []
        for config in self._configs():
            files = self.src.glob(f"{config}/{self.params.split}-*.parquet")
            if not files:
                raise BuildError(f"{self.source_name}: no {config}/{self.params.split}-*.parquet under {self.root}")
            out += files
        return out

    def source_id(self, item) -> str:
        config = PurePosixPath(item.file).parts[0]
        return f"{config}-{F.ident(item.data, 'id', item.locator)}"

    def records(self, part: Part) -> Iterator[RawRecord]:
        seen: dict[str, int] = {}  # ids are not promised unique within a config; keys must be
        for record in super().records(part):
            seen[record.source_id] = seen.get(record.source_id, 0) + 1
            if seen[record.source_id] > 1:
                record.source_id = f"{record.source_id}-dup{seen[record.source_id] - 1}"
            yield record

    def _archives(self, config: str) -> ArchiveSet:
        split = self.params.split
        listed = f"{config}/{split}_images_zips.txt"
        if self.src.is_file(listed):
            return ArchiveSet.from_list_file(self.src, listed)
        return ArchiveSet(self.src, self.src.glob(f"{config}/{split}_images*.zip"))

    def to_sample(self, record: RawRecord) -> Sample:
        p, where = self.params, record.locator
        config = PurePosixPath(record.source_file).parts[0]
        spec = SUBSETS.get(config)
        if spec is None:
            raise SourceError(f"{where}: {config!r} is not a known Mantis config")
        images = F.listing(record.data, "images", where, default=None)
        if not images:
            raise SourceError(f"{where}: a row without images", reason="filtered")
        turns = []
        for i, t in enumerate(F.listing(record.data, "conversation", where)):
            role = F.text(t, "role", f"{where}: conversation[{i}]")
            if role not in ROLES:
                raise SourceError(f"{where}: conversation[{i}]: unknown role {role!r}")
            turns.append((ROLES[role], F.text(t, "content", f"{where}: conversation[{i}]")))
        ops: list[str] = []
        count = sum(text.count(IMAGE_TOKEN) for _, text in turns)
        if count > len(images):
            raise SourceError(f"{where}: {count} <image> token(s) for {len(images)} image(s)", reason="validation")
        if count < len(images) and p.prepend_missing_tokens:
            turns[0] = (turns[0][0], IMAGE_TOKEN * (len(images) - count) + turns[0][1])
            ops.append(f"prepend_image_tokens:{len(images) - count}")
        media, paths = [], []
        sid = F.ident(record.data, "id", where)
        for slot, image in enumerate(images):
            what = f"{where}: images[{slot}]"
            if not isinstance(image, dict):
                raise SourceError(f"{what}: expected {{bytes, path}}, got {type(image).__name__}")
            data = self.embedded_bytes(image, what)
            rel = image.get("path")
            if data is None:
                rel = F.check_text(rel, f"{what}.path")
                archives = self.cached(("zips", config), lambda: self._archives(config))
                data = archives.read(rel, "image")
            elif not isinstance(rel, str) or not rel:
                rel = f"{sid}_{slot}.jpg"  # parquet mode without a path: a name of our own
            media.append(self.image_from_bytes(data, f"{config}/{rel}", slot))
            paths.append(f"{p.image_prefix.format(config=config)}/{rel}")
        qtype = spec.question_type
        if qtype == "by_answer":
            qtype = "multi-choice" if _LETTER_ANSWER.match(turns[-1][1]) else "open-ended"
        turns = place(turns, self.key_for(record), p.front_fraction, ops)
        out = self.m4_sample(record, turns, images=paths, media=media, question_type=qtype,
                             dataset=p.dataset_name or spec.dataset, split="train", ops=ops)  # fmt: skip
        out.record["sample_id"] = sid
        return out

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        _write_miniature(Path(root), seed=seed)


# --- the miniature ---------------------------------------------------------------------------------


def _jpeg(seed: int, size=(64, 48)) -> bytes:
    buf = io.BytesIO()
    synthetic_image(seed, size).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _rows(config: str) -> list[tuple[str, list[str], list[tuple[str, str]]]]:
    """(id, image paths, turns) per row, in each config's own style [V the prepare scripts]."""
    if config == "nlvr2":
        return [(f"nlvr2_{i}", [f"train/{i}/train-{i}-0-img0.png", f"train/{i}/train-{i}-0-img1.png"],
                 [("user", "<image><image>\\nThe left image shows two shapes. True or False?"),
                  ("assistant", "Answer: A" if i % 2 else "True")]) for i in range(3)]  # fmt: skip
    if config == "iconqa":
        return [("iconqa_choose_img_0", ["choose_img/0/image.png", "choose_img/0/choice_0.png",
                                         "choose_img/0/choice_1.png"],
                 [("user", "<image>Which shape is next?\\nA. <image>\\nB. <image>"), ("assistant", "Answer: B")]),
                ("iconqa_fill_in_blank_1", ["fill_in_blank/1/image.png"],
                 [("user", "How many shapes are there?<image>"), ("assistant", "Answer: 3")]),
                ("iconqa_fill_in_blank_2", ["fill_in_blank/2/image.png"],  # more tokens than images
                 [("user", "<image><image>How many shapes?"), ("assistant", "Answer: 2")])]  # fmt: skip
    if config in ("star", "nextqa"):  # 8 frames, no <image>, all questions of a video merged
        return [(f"{v}", [f"{v}_{i}.jpg" for i in range(8)],
                 [("user", "What did the person do first?\\nA: sit\\nB: stand\\n"), ("assistant", "A: sit"),
                  ("user", "What happened next?\\nA: open\\nB: close\\n"), ("assistant", "B: close")])
                for v in (f"{config}V0A1", f"{config}V0A2")]  # fmt: skip
    if config == "dreamsim":
        return [(f"dream_sim_nights_{i}", [f"{i:03d}_ref.png", f"{i:03d}_0.png", f"{i:03d}_1.png"],
                 [("user", "Answer the following multiple-choice question:\\nHere are three images: <image> <image> "
                           "<image>. If image 1 is the reference image, which image of the other two is more similar?"
                           "\\nA. image 2\\nB. image 3"), ("assistant", "A" if i else "Image 2 is more similar.")])
                for i in range(2)]  # fmt: skip
    n = {"coinstruct": 2, "contrastive_caption": 3, "imagecode": 4, "multi_vqa": 2}[config]
    return [(f"{config}_{i}", [f"{config}/{i}_{j}.jpg" for j in range(n)],
             [("user", "Here are images: " + "<image>" * n + ". Compare them."),
              ("assistant", "They differ in colour."), ("user", "Which is brighter?"),
              ("assistant", "The first one.")]) for i in range(2)]  # fmt: skip


def _write_miniature(root: Path, *, seed: int = 0) -> None:
    """Every config: a parquet with the real column types (null image bytes in zip mode), its
    images in ``train_images.zip`` — nlvr2 as two ``_partN`` zips named in
    ``train_images_zips.txt``, one zip under an extra outer folder — and dreamsim uploaded in
    parquet mode (bytes in the rows, no zip); rows in their prepare scripts' styles, with tokens
    missing (star, nextqa) and one row with more tokens than images (iconqa)."""
    import zipfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("id", pa.string()),
                        ("images", pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))),
                        ("conversation", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
                        ("source", pa.string())])  # fmt: skip
    for c_i, config in enumerate(SUBSETS):
        folder = root / config
        folder.mkdir(parents=True, exist_ok=True)
        rows, members = [], {}
        for r_i, (rid, paths, turns) in enumerate(_rows(config)):
            embedded = config == "dreamsim"
            images = []
            for j, rel in enumerate(paths):
                data = _jpeg(seed + 1000 * c_i + 10 * r_i + j)
                members.setdefault(rel, data)
                images.append({"bytes": data if embedded else None, "path": rel})
            rows.append(
                {
                    "id": rid,
                    "images": images,
                    "source": config,
                    "conversation": [{"role": r, "content": t.replace("\\n", "\n")} for r, t in turns],
                }
            )
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), folder / "train-00000-of-00001.parquet",
                       row_group_size=2)  # fmt: skip
        if config == "dreamsim":
            continue
        names = sorted(members)
        parts = [names[: len(names) // 2], names[len(names) // 2 :]] if config == "nlvr2" else [names]
        zips = []
        for k, part in enumerate(parts):
            zip_name = f"train_images_part{k}.zip" if len(parts) > 1 else "train_images.zip"
            outer = f"{config}_images/" if config == "coinstruct" else ""  # an extra outer folder
            with zipfile.ZipFile(folder / zip_name, "w") as zf:
                for name in part:
                    zf.writestr(outer + name, members[name])
            zips.append(zip_name)
        if config in ("nlvr2", "iconqa"):
            (folder / "train_images_zips.txt").write_text("".join(z + "\n" for z in zips))
