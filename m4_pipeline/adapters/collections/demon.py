"""DEMON-Full (DCDmllm/Cheetah "DEMON Benchmark"): the 21 datasets M4-Instruct took from it.

Layout (Google Drive; one folder per dataset)::

    <Folder>/full/full.json    {"metadata": {dataset, split, num_sample, task_instruction: [...],
                                             question_type}, "data": [sample, ...]}
    <Folder>/full/images/<n>.jpg|png   bare names, numbered through the whole dataset

A sample is ``{sample_id, task_instruction_id, task_instance: {context, images_path,
choice_list?}, response}`` [V: the dataset READMEs and Cheetah's loader]. Whether the Drive
nests the folders under their category is not known [U]: ``subset_dir`` names the layout.

The M4 record [I, the mapping of ../shared/reference/m4_sources.md §1.4]: the human turn is the
chosen instruction (``task_instruction[task_instruction_id]``) followed by the context, with
every ``{image#k}`` / ``{table#k}`` (1-based, one numbering over ``images_path``, as Cheetah's
loader reads them) turned into ``<image>``; the image list follows the placeholders' order. A
placeholder out of range or repeated, or a count that differs from ``images_path``, quarantines
the sample. ``choice_list`` is kept for multi-choice sets (the options also stay inline in the
text). ALFRED's empty ``question_type`` becomes "open-ended" (recorded in ``ops``). The M4 names
of the datasets follow the release's zip names (``FlintstonesSV``, not DEMON's ``Flintstones``).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from ...errors import BuildError
from ...readers import load_json
from ...sample import Sample
from ...synthetic import synthetic_image
from .. import fields as F
from ..base import Adapter, RawRecord, SourceError, SourceParams
from ..placement import place

PLACEHOLDER = re.compile(r"\{(image|table)#(\d+)\}")
QUESTION_TYPES = ("open-ended", "multi-choice")


class Subset(NamedTuple):
    category: str  # DEMON's category folder [V repo tree]
    dataset: str  # M4 metadata.dataset (the release's zip spelling)
    demon_name: str  # DEMON's own metadata.dataset [V READMEs]
    question_type: str  # DEMON's question type; "" is ALFRED's, mapped by Params.empty_question_type
    images: int  # images per sample (the miniature's; DEMON's README example)


SUBSETS: dict[str, Subset] = {
    "Spot-the-Diff": Subset("Visual Relation Inference", "Spot-the-Diff", "Spot-the-Diff", "open-ended", 2),
    "Birds-to-Words": Subset("Visual Relation Inference", "Birds-to-Words", "Birds-to-Words", "open-ended", 2),
    "CLEVR-Change": Subset("Visual Relation Inference", "CLEVR-Change", "CLEVR-Change", "open-ended", 2),
    "IEdit": Subset("Visual Relation Inference", "IEdit", "IEdit", "open-ended", 2),
    "AESOP": Subset("Visual Storytelling", "AESOP", "AESOP", "open-ended", 3),
    "FlintstonesSV": Subset("Visual Storytelling", "FlintstonesSV", "Flintstones", "open-ended", 5),
    "PororoSV": Subset("Visual Storytelling", "PororoSV", "PororoSV", "open-ended", 5),
    "VIST": Subset("Visual Storytelling", "VIST", "VIST", "open-ended", 5),
    "COMICS_Dialogue": Subset("Multi-Modal Cloze", "COMICS_Dialogue", "COMICS_Dialogue", "multi-choice", 5),
    "RecipeQA_VisualCloze": Subset(
        "Multi-Modal Cloze", "RecipeQA_VisualCloze", "RecipeQA_VisualCloze", "multi-choice", 7
    ),  # fmt: skip
    "WebQA": Subset("Knowledge Grounded QA", "WebQA", "WebQA", "multi-choice", 2),
    "TQA": Subset("Knowledge Grounded QA", "TQA", "TQA", "multi-choice", 2),
    "OCR-VQA": Subset("Text-Rich Images QA", "OCR-VQA", "OCR-VQA", "multi-choice", 2),
    "DocVQA": Subset("Text-Rich Images QA", "DocVQA", "DocVQA", "multi-choice", 2),
    "MIT-States_StateCoherence": Subset(
        "Multi-Image Reasoning", "MIT-States_StateCoherence", "MIT-States_StateCoherence", "multi-choice", 4
    ),  # fmt: skip
    "MIT-States_PropertyCoherence": Subset(
        "Multi-Image Reasoning", "MIT-States_PropertyCoherence", "MIT-States_PropertyCoherence", "multi-choice", 4
    ),  # fmt: skip
    "RecipeQA_ImageCoherence": Subset(
        "Multi-Image Reasoning", "RecipeQA_ImageCoherence", "RecipeQA_ImageCoherence", "multi-choice", 8
    ),  # fmt: skip
    "VISION": Subset("Multi-Image Reasoning", "VISION", "VISION", "multi-choice", 2),
    "VizWiz": Subset("Multi-Image Reasoning", "VizWiz", "VizWiz", "multi-choice", 2),
    "ALFRED": Subset("Multi-Modal Dialogue", "ALFRED", "ALFRED", "", 4),
    "nuScenes": Subset("Multi-Image Reasoning", "nuScenes", "nuScenes", "multi-choice", 6),
}


@dataclass
class Params(SourceParams):
    subsets: list[str] = field(default_factory=list)  # folders of SUBSETS; [] = every one present
    split: str = "full"  # DEMON-Full; "core" reads DEMON-Core
    subset_dir: str = "{folder}/{split}"  # [U] Drive nesting; e.g. "{category}/{folder}/{split}"
    image_prefix: str = "{dataset}/images"  # M4 image path prefix [U: the release's exact inner path]
    instruction_separator: str = ""  # between instruction and context: "" as Cheetah's loader [V]
    empty_question_type: str = "open-ended"  # ALFRED's "" [I: M4 has only the two types]
    front_fraction: float = 0.0  # share of samples with every <image> moved to the front [U]

    def __post_init__(self):
        unknown = [s for s in self.subsets if s not in SUBSETS]
        if unknown:
            raise BuildError(f"demon: unknown subset(s) {unknown}; known: {', '.join(SUBSETS)}")
        if self.empty_question_type not in QUESTION_TYPES:
            raise BuildError(f"demon: empty_question_type must be one of {QUESTION_TYPES}")


class Demon(Adapter):
    name = "demon"
    family = "m4"
    Params = Params
    description = "DEMON-Full collection (21 M4-Instruct datasets: <Dataset>/full/full.json + images)"

    def _dir(self, folder: str) -> str:
        return self.params.subset_dir.format(folder=folder, split=self.params.split,
                                             category=SUBSETS[folder].category)  # fmt: skip

    def _folders(self) -> list[str]:
        if self.params.subsets:
            return list(self.params.subsets)
        return [f for f in SUBSETS if self.src.is_file(f"{self._dir(f)}/{self.params.split}.json")]

    def preflight(self) -> None:
        if not self._folders():
            raise BuildError(f"{self.source_name}: no DEMON subset found under {self.root} "
                             f"(expected e.g. {self._dir('IEdit')}/{self.params.split}.json)")  # fmt: skip

    def list_records(self) -> Iterator[RawRecord]:
        """Each subset's file is read once here; its metadata (the instruction chosen for the
        sample, the question type) travels in the record, so workers never reread the file."""
        for folder in self._folders():
            rel = f"{self._dir(folder)}/{self.params.split}.json"
            whole = load_json(self.src, rel)
            meta = whole.get("metadata") if isinstance(whole, dict) else None
            data = whole.get("data") if isinstance(whole, dict) else None
            if not isinstance(meta, dict) or not isinstance(data, list):
                raise BuildError(f"{rel}: expected {{metadata: {{...}}, data: [...]}}")
            instructions = meta.get("task_instruction")
            for i, sample in enumerate(data):
                sid = sample.get("sample_id") if isinstance(sample, dict) else None
                ident = str(sid) if isinstance(sid, (int, str)) and not isinstance(sid, bool) else f"index{i}"
                yield RawRecord(rel, f"index {i}", f"{folder}-{ident}", {
                    "folder": folder, "sample": sample, "instructions": instructions,
                    "question_type": meta.get("question_type")})  # fmt: skip

    def to_sample(self, record: RawRecord) -> Sample:
        p, where = self.params, record.locator
        folder = F.text(record.data, "folder", where)
        subset = SUBSETS.get(folder)
        if subset is None:
            raise SourceError(f"{where}: unknown DEMON subset {folder!r}")
        sample = F.mapping(record.data, "sample", where)
        instance = F.mapping(sample, "task_instance", where)
        instructions = F.texts(record.data, "instructions", f"{where}: metadata")
        k = F.integer(sample, "task_instruction_id", where, lo=0, hi=len(instructions) - 1)
        context = F.text(instance, "context", f"{where}: task_instance")
        paths = F.texts(instance, "images_path", f"{where}: task_instance")
        response = F.need(sample, "response", where)
        if isinstance(response, bool) or not isinstance(response, (str, int, float)):
            raise SourceError(f"{where}: field 'response': expected text, got {type(response).__name__}")
        response = F.check_text(str(response), f"{where}: field 'response'")
        text, order = _placeholders_to_tokens(context, len(paths), where)
        ops: list[str] = []
        qtype = record.data.get("question_type")
        if qtype == "":
            qtype = p.empty_question_type
            ops.append(f"question_type:''->{qtype}")
        if qtype not in QUESTION_TYPES:
            raise SourceError(f"{where}: metadata question_type {qtype!r} is not one of {QUESTION_TYPES}")
        choices = None
        if qtype == "multi-choice" and instance.get("choice_list") is not None:
            choices = [F.check_text(str(c), f"{where}: choice_list[{i}]")
                       for i, c in enumerate(F.listing(instance, "choice_list", where))]  # fmt: skip
        base = f"{self._dir(folder)}/images"
        prefix = p.image_prefix.format(dataset=subset.dataset, folder=folder)
        media = [self.image(f"{base}/{_bare(paths[j], where)}", slot) for slot, j in enumerate(order)]
        turns = [("human", instructions[k] + p.instruction_separator + text), ("gpt", response)]
        turns = place(turns, self.key_for(record), p.front_fraction, ops)
        out = self.m4_sample(record, turns, images=[f"{prefix}/{paths[j]}" for j in order], media=media,
                             question_type=qtype, choice_list=choices, task_instruction=instructions[k],
                             dataset=p.dataset_name or subset.dataset, split="train", ops=ops)  # fmt: skip
        out.record["sample_id"] = sample.get("sample_id", out.record["sample_id"])  # DEMON's own id, as M4 keeps
        return out

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        _write_miniature(Path(root), seed=seed)


def _placeholders_to_tokens(context: str, n_images: int, where: str) -> tuple[str, list[int]]:
    """(text with ``<image>`` for each placeholder, the images_path index of each, in order)."""
    order = []
    for m in PLACEHOLDER.finditer(context):
        k = int(m.group(2))
        if not 1 <= k <= n_images:
            raise SourceError(f"{where}: placeholder {m.group(0)} but images_path has {n_images} image(s)")
        if k - 1 in order:
            raise SourceError(f"{where}: placeholder {m.group(0)} appears twice")
        order.append(k - 1)
    if len(order) != n_images:
        raise SourceError(f"{where}: {len(order)} placeholder(s) in the context for {n_images} image(s) in "
                          f"images_path", reason="validation")  # fmt: skip
    return PLACEHOLDER.sub("<image>", context), order


def _bare(name: str, where: str) -> str:
    if "/" in name or "\\" in name:
        raise SourceError(f"{where}: images_path entry {name!r} is not a bare file name", reason="unsafe_path")
    return name


# --- the miniature ---------------------------------------------------------------------------------

_OE_CONTEXT = "{imgs}Caption#{n}:"
_MC_CONTEXT = "{imgs}Question: which one fits? Choice List:['{a}', '{b}'] Your answer is:"


def _write_miniature(root: Path, *, seed: int = 0) -> None:
    """Every subset with three or four samples in its real shape: one instruction list per file,
    image names numbered through the dataset, PNG frames for FlintstonesSV, placeholders inside the
    choice list (RecipeQA_VisualCloze), a ``{table#k}`` (WebQA), ALFRED's empty question type, an
    integer response, and one sample whose placeholders do not match its images (quarantined)."""
    for s_i, (folder, sub) in enumerate(SUBSETS.items()):
        base = root / folder / "full"
        (base / "images").mkdir(parents=True, exist_ok=True)
        ext = "png" if folder == "FlintstonesSV" else "jpg"
        data, next_image = [], 0
        for n in range(3 + (s_i % 2)):
            names = [f"{next_image + j}.{ext}" for j in range(sub.images)]
            next_image += sub.images
            for j, name in enumerate(names):
                buf = io.BytesIO()
                synthetic_image(seed + 97 * s_i + 11 * n + j, (72, 56)).save(buf, "PNG" if ext == "png" else "JPEG")
                (base / "images" / name).write_bytes(buf.getvalue())
            tags = [f"{{image#{j + 1}}}" for j in range(sub.images)]
            if folder == "WebQA":
                tags[0] = "{table#1}"
            instance = {"images_path": names}
            if folder == "RecipeQA_VisualCloze":
                half = sub.images - 2
                choices = [f"Image {c}: {{image#{half + i + 1}}}" for i, c in enumerate("AB")]
                instance["context"] = (f"Recipe: shapes\nRecipe Image Series: {' '.join(tags[:half])} UNKNOWN\n"
                                       f"Choice List:{choices!r}Your answer to replace 'UNKNOWN' is:")  # fmt: skip
                instance["choice_list"], response = ["Image A", "Image B"], "Image B"
            elif sub.question_type == "multi-choice":
                instance["context"] = _MC_CONTEXT.format(imgs="".join(tags), a="red", b="blue")
                instance["choice_list"], response = ["red", "blue"], "red" if n % 2 else "blue"
            else:
                instance["context"] = "".join(f"{t}Caption#{j + 1}: a shape moves. " for j, t in enumerate(tags[:-1]))
                instance["context"] += _OE_CONTEXT.format(imgs=tags[-1], n=len(tags))
                response = "The shape stops at the edge."
            if folder == "VizWiz" and n == 0:
                response = 1  # DEMON's Fashion200K holds int responses; the adapter takes any scalar
            if folder == "IEdit" and n == 2:
                instance["context"] = "Source Image:{image#1} Target Image:Instruction:"  # 1 placeholder, 2 images
            data.append({"sample_id": n, "task_instruction_id": (n * 3) % 4, "task_instance": instance,
                         "response": response})  # fmt: skip
        metadata = {"dataset": sub.demon_name, "split": "full", "num_sample": len(data),
                    "task_instruction": [f"Instruction {i} for {sub.demon_name}. " for i in range(4)],
                    "question_type": sub.question_type}  # fmt: skip
        (base / "full.json").write_text(json.dumps({"metadata": metadata, "data": data}, indent=1))
