"""One sample to model inputs, as the LLaVA trainers build them, with every check that needs no model.

The conversation is rendered with the ``qwen_1_5`` ChatML template and tokenized turn by turn
(as LLaVA-NeXT's ``preprocess_qwen`` does), so each turn's tokens and label mask are exact:
system and user turns and each assistant header (``<|im_start|>assistant\\n``) are -100 in the
labels; the assistant's text and its ``<|im_end|>\\n`` are trained on. (LLaVA-NeXT's code also
unmasks every ``\\n``, ``<|im_start|>`` and ``<|im_end|>`` of user turns; that is not done here.)

Media per placeholder slot:

- M4 (LLaVA): one image per ``<image>``. A multi-patch slot (anyres tiles of one image) counts as
  one image: its base patch (``grid`` null) is used and the tiles are ignored, because the
  multi-image LLaVA path takes one 384 px image per placeholder (no anyres for multi-image).
  ``<image>`` is expanded by the LlavaProcessor.
- ST (LLaVA-ST on the OneVision classes): one video per ``<video>`` (its frames) or one image per
  ``<image>`` (an ST image sample: one frame for LAPE), squashed to the vision size, and each
  placeholder expanded to LLaVA-ST's own count (:mod:`.st_layout`): 2520 positions per video
  (100 x 9 fast + 20 x 81 slow) and 729 per image. Length and truncation checks use these counts.
"""

from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass, field

from PIL import Image, UnidentifiedImageError

from ..coords import PLACEHOLDER_OF, ST_VARIABLES
from ..errors import MediaError
from ..media.refs import VIDEO_KINDS, DataRoots, video_frames
from ..sample import Media, Sample
from .models import FamilySetup
from .tokens import CONTROL_TOKENS, IM_END, IM_START, IMAGE_TOKEN, ST_PLACEHOLDERS, VIDEO_TOKEN

IGNORE_INDEX = -100
SYSTEM_PROMPT = "You are a helpful assistant."
CHATML_ROLES = {"human": "user", "gpt": "assistant"}
_VARIABLE_OF = {f"<{axis}-{io}>": name for (axis, io), name in ST_VARIABLES.items()}

# Why a sample fails the check; the report groups failures by these names.
REASONS = {
    "unreadable": "no JSON member, or JSON that is not a record",
    "missing_media": "the media members differ from the media the record describes",
    "bad_image": "a media member does not decode as an image",
    "bad_media": "a video (a clip, or a referenced source video) does not decode or differs from the build's record",
    "bad_roles": "turns are not human/gpt alternating, starting with human",
    "control_tokens": "turn text holds ChatML control tokens, which would break the template",
    "placeholder_role": "a media placeholder in a gpt turn: the loaders expand those of human turns only",
    "placeholder_mismatch": "the placeholders in the text differ from the media slots",
    "image_tokens": "image tokens in input_ids differ from images x tokens per image",
    "st_tokenization": "an ST placeholder did not become exactly one token id",
    "st_variables": "an ST placeholder count differs from the length of its variables list",
    "no_target": "no assistant token to train on",
    "over_max_length": "longer than max_length: truncation would cut the end of the text",
    "truncated_image_tokens": "longer than max_length: truncation would cut image tokens",
    "forward_error": "the model's forward pass raised",
    "non_finite_loss": "the loss is NaN or infinite",
    "backward_error": "the backward pass raised",
    "non_finite_grad": "the gradient norm is NaN or infinite",
}
SKIP_REASONS = {"unsupported_media": "media layouts this check does not model yet (named in the detail)"}


@dataclass
class Failure:
    key: str
    shard: str
    reason: str
    detail: str


@dataclass
class CheckedSample:
    """What the loader yields per sample: its inputs when they could be built, and its failures."""

    key: str
    shard: str
    family: str
    input_ids: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    pixel_values: object = None  # M4 and ST images: tensor (images, 3, S, S)
    pixel_values_videos: object = None  # ST: tensor (videos, frames, 3, S, S)
    failures: list[Failure] = field(default_factory=list)
    skipped: str | None = None  # "reason: detail"

    @property
    def length(self) -> int:
        return len(self.input_ids)

    @property
    def trainable(self) -> bool:
        return bool(self.input_ids) and not self.failures and self.skipped is None

    def fail(self, reason: str, detail: str) -> CheckedSample:
        if reason not in REASONS:
            raise KeyError(f"unknown failure reason {reason!r}")
        self.failures.append(Failure(self.key, self.shard, reason, detail))
        return self


@dataclass
class Slot:
    kind: str  # "image" | "video"
    media: list[Media]


def check_sample(
    shard: str,
    sample: Sample | None,
    error: str | None,
    setups: dict[str, FamilySetup],
    max_length: int,
    roots: DataRoots | None = None,
) -> CheckedSample:
    """Build one sample's inputs and run the model-free checks on them."""
    if sample is None:
        key = (error or "?").split(":", 1)[0]
        return CheckedSample(key, shard, "?").fail("unreadable", error or "unreadable")
    out = CheckedSample(sample.key, shard, sample.family)
    if error:
        return out.fail("missing_media", error.split(": ", 1)[-1])
    _check_turns(sample, out)
    slots = _slots(sample, out)
    if out.failures or out.skipped:
        return out
    setup = setups[sample.family]
    decoded = []
    for slot in slots:
        if slot.media[0].kind in VIDEO_KINDS:  # a clip, or a reference decoded from its source video
            try:
                decoded.append([Image.fromarray(px) for px in video_frames(slot.media, roots)])
            except MediaError as err:
                reason = err.reason if err.reason in REASONS else "bad_media"
                return out.fail(reason, f"slot {slot.media[0].slot}: {err}")
            continue
        images = []
        for m in slot.media:
            try:
                images.append(_decode(m))
            except UnidentifiedImageError:
                return out.fail("bad_image", f"slot {m.slot}: {len(m.data)} bytes of .{m.ext} are no image")
            except (OSError, ValueError) as err:
                return out.fail("bad_image", f"slot {m.slot}: .{m.ext} does not decode: {err}")
        decoded.append(images)
    _encode(sample, slots, decoded, setup, out)
    _check_tokens(sample, slots, setup, out, max_length)
    return out


def _check_turns(sample: Sample, out: CheckedSample) -> None:
    roles = [t.role for t in sample.conversations]
    expected = [("human", "gpt")[i % 2] for i in range(len(roles))]
    if not roles or roles != expected:
        out.fail("bad_roles", f"roles {roles[:6]}{'...' if len(roles) > 6 else ''}")
    for i, turn in enumerate(sample.conversations):
        found = [t for t in CONTROL_TOKENS if t in turn.value]
        if found:
            out.fail("control_tokens", f"conversations[{i}] contains {found}")
        placeholder = PLACEHOLDER_OF[sample.family].search(turn.value)
        if placeholder and turn.role != "human":  # the loaders expand media placeholders of human turns only
            out.fail("placeholder_role", f"conversations[{i}] is a {turn.role} turn with {placeholder.group()}")


def _slots(sample: Sample, out: CheckedSample) -> list[Slot]:
    """The media of each placeholder, in order; checks placeholders against slots."""
    by_slot: dict[int, list[Media]] = defaultdict(list)
    for m in sample.media:
        by_slot[m.slot].append(m)
    placeholders = [m.group() for t in sample.conversations for m in PLACEHOLDER_OF[sample.family].finditer(t.value)]
    if len(placeholders) != len(by_slot):
        out.fail(
            "placeholder_mismatch",
            f"{len(placeholders)} placeholder(s) in the text but "
            f"{len(by_slot)} media slot(s) ({len(sample.media)} media)",
        )
        return []
    slots = []
    for placeholder, (slot, media) in zip(placeholders, sorted(by_slot.items()), strict=True):
        kinds = {m.kind for m in media}
        whole_video = kinds in ({"clip"}, {"video"}) and len(media) == 1
        if sample.family == "st":
            if placeholder == VIDEO_TOKEN and (kinds == {"frame"} or whole_video):
                slots.append(Slot("video", media))
            elif placeholder == IMAGE_TOKEN and kinds == {"image"} and len(media) == 1:
                slots.append(Slot("image", media))
            else:
                out.fail(
                    "placeholder_mismatch",
                    f"slot {slot}: {placeholder} over {len(media)} {sorted(kinds)} media",
                )
        elif kinds == {"patch"}:
            base = [m for m in media if m.grid is None]
            if len(base) != 1:
                out.fail("placeholder_mismatch", f"slot {slot}: {len(base)} base patches (grid null), need 1")
            slots.append(Slot("image", base[:1]))
        elif whole_video or kinds == {"frame"}:  # an M4 video: its frames as images, as LLaVA-NeXT feeds them
            slots.append(Slot("frames", media))
        elif len(media) == 1:
            slots.append(Slot("image", media))
        else:
            detail = f"slot {slot}: {len(media)} {sorted(kinds)} media behind one {placeholder}"
            out.fail("placeholder_mismatch", detail)
    return slots


def _decode(media: Media) -> Image.Image:
    img = Image.open(io.BytesIO(media.data))
    img.load()  # decode errors surface here, named by the caller
    return img if img.mode == "RGB" else img.convert("RGB")


def _segments(sample: Sample) -> list[tuple[str, bool]]:
    """ChatML text pieces of the ``qwen_1_5`` template, each with whether it is trained on."""
    pieces = [(f"{IM_START}system\n{SYSTEM_PROMPT}{IM_END}\n", False)]
    for turn in sample.conversations:
        role = CHATML_ROLES[turn.role]
        if role == "assistant":
            pieces += [(f"{IM_START}assistant\n", False), (f"{turn.value}{IM_END}\n", True)]
        else:
            pieces.append((f"{IM_START}{role}\n{turn.value}{IM_END}\n", False))
    return pieces


def _encode(
    sample: Sample,
    slots: list[Slot],
    decoded: list[list[Image.Image]],
    setup: FamilySetup,
    out: CheckedSample,
) -> None:
    import torch

    pattern = PLACEHOLDER_OF[sample.family]
    next_slot = 0
    pixels, videos = [], []
    for text, trained in _segments(sample):
        n = len(pattern.findall(text))
        media = decoded[next_slot : next_slot + n]
        next_slot += n
        if sample.family == "m4":
            ids, pv = _encode_m4(_expand_frames(text, slots[next_slot - n : next_slot], media), setup,
                                 [img for imgs in media for img in imgs])  # fmt: skip
            if pv is not None:
                pixels.append(pv)
        else:
            ids, imgs, vids = _encode_st(text, media, setup)
            pixels += imgs
            videos += vids
        out.input_ids += ids
        out.labels += ids if trained else [IGNORE_INDEX] * len(ids)
    if pixels:  # usually one segment holds every image: no copy then
        out.pixel_values = pixels[0] if len(pixels) == 1 else torch.cat(pixels)
    if videos:
        out.pixel_values_videos = torch.stack(videos)


def _expand_frames(text: str, slots: list[Slot], media: list[list[Image.Image]]) -> str:
    """An M4 video's one ``<image>`` becomes one per frame (LLaVA-NeXT feeds a video's frames as
    images); other placeholders stay."""
    pieces = PLACEHOLDER_OF["m4"].split(text)
    out = pieces[0]
    for slot, images, piece in zip(slots, media, pieces[1:], strict=True):
        out += IMAGE_TOKEN * (len(images) if slot.kind == "frames" else 1) + piece
    return out


def _encode_m4(text: str, setup: FamilySetup, images: list[Image.Image]):
    if not images:
        return setup.tokenizer(text, add_special_tokens=False)["input_ids"], None
    enc = setup.processor(text=[text], images=images, return_tensors="pt")
    return enc["input_ids"][0].tolist(), enc["pixel_values"]


def _encode_st(text: str, media: list[list[Image.Image]], setup: FamilySetup):
    """Token ids with each placeholder expanded to LLaVA-ST's count; the image and video tensors."""
    parts = PLACEHOLDER_OF["st"].split(text)
    placeholders = PLACEHOLDER_OF["st"].findall(text)
    expanded, images, videos = parts[0], [], []
    for placeholder, frames, part in zip(placeholders, media, parts[1:], strict=True):
        pixels = setup.image_processor(frames, return_tensors="pt")["pixel_values"]
        if placeholder == IMAGE_TOKEN:
            images.append(pixels)
            expanded += IMAGE_TOKEN * setup.tokens_per_image() + part
        else:
            videos.append(pixels)
            expanded += VIDEO_TOKEN * setup.tokens_per_video() + part
    return setup.tokenizer(expanded, add_special_tokens=False)["input_ids"], images, videos


def _check_tokens(sample: Sample, slots: list[Slot], setup: FamilySetup, out: CheckedSample, max_length: int) -> None:
    ids = out.input_ids
    media_ids = {setup.token_ids["image"]}
    if sample.family == "m4":
        n_images = sum(len(_frames_of(s)) if s.kind == "frames" else 1 for s in slots)
        expected = n_images * setup.tokens_per_image()
        what = f"{n_images} image(s) x {setup.tokens_per_image()}"
    else:
        media_ids.add(setup.token_ids["video"])
        per_slot = [setup.tokens_per_image() if s.kind == "image" else setup.tokens_per_video() for s in slots]
        expected = sum(per_slot)
        what = " + ".join(f"{s.kind} {n}" for s, n in zip(slots, per_slot)) + " (LLaVA-ST's counts)"
    found = sum(1 for i in ids if i in media_ids)
    if found != expected:
        out.fail("image_tokens", f"{found} media tokens in input_ids, expected {expected} ({what})")
    if sample.family == "st":
        _check_st_placeholders(sample, setup, out)
    if all(label == IGNORE_INDEX for label in out.labels):
        out.fail("no_target", "no assistant turn")
    if len(ids) > max_length:
        cut = sum(1 for i in ids[max_length:] if i in media_ids)
        if cut:
            out.fail(
                "truncated_image_tokens",
                f"{len(ids)} tokens > max_length {max_length}: truncation cuts {cut} of its {found} media tokens",
            )
        else:
            out.fail("over_max_length", f"{len(ids)} tokens > max_length {max_length} (text cut, media intact)")


def _frames_of(slot: Slot) -> list[int]:
    return [i for m in slot.media for i in m.source_frames()]


def _check_st_placeholders(sample: Sample, setup: FamilySetup, out: CheckedSample) -> None:
    variables = sample.record.get("variables")
    if not isinstance(variables, dict):
        out.fail("st_variables", "no 'variables' object")
        variables = {}
    text = "".join(t.value for t in sample.conversations)
    for placeholder in ST_PLACEHOLDERS:
        in_text = text.count(placeholder)
        in_ids = out.input_ids.count(setup.token_ids[placeholder])
        if in_ids != in_text:
            out.fail("st_tokenization", f"{placeholder}: {in_text} in the text but {in_ids} token id(s)")
        name = _VARIABLE_OF[placeholder]
        values = variables.get(name)
        n_values = len(values) if isinstance(values, list) else 0
        if in_text != n_values:
            out.fail("st_variables", f"{in_text} {placeholder} but {n_values} value(s) in variables.{name}")
