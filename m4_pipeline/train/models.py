"""The model side of the check: per family, a config, tokenizer and image processors, and the model.

Three sources give the same objects, so the rest of the check has one code path:

- ``tiny``: the real classes from a small random config (CPU-fast: 28 px images, 2 layers);
- ``full``: the published architecture with random weights (llava-interleave-qwen-0.5b for M4,
  llava-onevision-qwen2-0.5b for ST), for GPU checks and a faithful token budget;
- a local llava-hf checkpoint folder (``--model`` / ``--st-model``), loaded with ``from_pretrained``.

The model itself is built lazily (:meth:`FamilySetup.build_model`): the loader needs only the
tokenizer and processors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .st_layout import ST_IMAGE_TOKENS, ST_VIDEO_TOKENS, st_encoder_outputs
from .tokens import (
    IMAGE_TOKEN,
    IMAGE_TOKEN_ID,
    ST_PLACEHOLDERS,
    VIDEO_TOKEN,
    VIDEO_TOKEN_ID,
    add_st_tokens,
    offline_qwen_tokenizer,
    single_token_id,
)

log = logging.getLogger(__name__)

Arch = Literal["tiny", "full"]
ARCHS: tuple[str, ...] = ("tiny", "full")
SIGLIP_MEAN_STD = [0.5, 0.5, 0.5]  # llava-interleave / onevision image processors
_ONEVISION_PINPOINTS = [[384 * h, 384 * w] for h in range(1, 7) for w in range(1, 7)]


class ModelSetupError(ValueError):
    """A model folder or architecture that cannot serve the check (wrong type, token ids)."""


@dataclass
class FamilySetup:
    """Everything needed to turn one family's samples into model inputs, and the model."""

    family: str  # "m4" | "st"
    description: str
    config: Any  # LlavaConfig | LlavaOnevisionConfig
    tokenizer: Any
    image_processor: Any  # M4: images; ST: video frames (squashed to the vision size, no anyres)
    processor: Any = None  # M4: the LlavaProcessor that expands <image>
    model_path: Path | None = None
    token_ids: dict[str, int] = field(default_factory=dict)

    @property
    def vision_size(self) -> int:
        return int(self.config.vision_config.image_size)

    @property
    def patches_per_side(self) -> int:
        return self.vision_size // int(self.config.vision_config.patch_size)

    def tokens_per_image(self) -> int:
        """M4 (LLaVA): one token per vision patch ("full"; "default" drops the CLS position).
        ST: LLaVA-ST's 729, whatever the architecture (:mod:`.st_layout`)."""
        if self.family == "st":
            return ST_IMAGE_TOKENS
        n = self.patches_per_side**2
        return n - 1 if self.config.vision_feature_select_strategy == "default" else n

    def tokens_per_video(self) -> int:
        """ST: LLaVA-ST's 100 x 9 fast + 20 x 81 slow = 2520 positions per ``<video>`` (:mod:`.st_layout`)."""
        return ST_VIDEO_TOKENS

    def model_inputs(self, model, batch: dict) -> dict:
        """The keyword arguments of the model's forward for a collated batch. ST: the images and
        videos become LLaVA-ST-shaped features (``mm_encoder_outputs``) of the model's own tower."""
        if self.family != "st":
            return batch
        batch = dict(batch)
        images, videos = batch.pop("pixel_values", None), batch.pop("pixel_values_videos", None)
        outputs = st_encoder_outputs(model, images, videos)
        return {**batch, "mm_encoder_outputs": outputs} if outputs else batch

    def build_model(self, device: str = "cpu"):
        """The model on ``device``: random weights are initialised there (fast on a GPU)."""
        import torch
        from transformers import LlavaForConditionalGeneration, LlavaOnevisionForConditionalGeneration

        cls = LlavaForConditionalGeneration if self.family == "m4" else LlavaOnevisionForConditionalGeneration
        if self.model_path is not None:
            model = cls.from_pretrained(self.model_path, local_files_only=True).to(device)
        else:
            with torch.device(device):
                model = cls(self.config)
        if len(self.tokenizer) > model.get_input_embeddings().num_embeddings:
            log.info("resizing %s embeddings to the tokenizer's %d tokens", self.family, len(self.tokenizer))
            model.resize_token_embeddings(len(self.tokenizer))
        return model


def _siglip_image_processor(size: int, mean: list[float], std: list[float]):
    """SigLIP-style preprocessing: squash to size x size (bicubic), rescale, normalize."""
    import transformers

    cls = getattr(transformers, "SiglipImageProcessorPil", None) or transformers.SiglipImageProcessor
    return cls(size={"height": size, "width": size}, resample=3, image_mean=mean, image_std=std)


def _text_config(arch: Arch, vocab_size: int, onevision: bool):
    from transformers import Qwen2Config

    if arch == "tiny":
        sizes = dict(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
        )
    elif onevision:  # Qwen2-0.5B
        sizes = dict(
            hidden_size=896,
            intermediate_size=4864,
            num_hidden_layers=24,
            num_attention_heads=14,
            num_key_value_heads=2,
        )
    else:  # Qwen1.5-0.5B
        sizes = dict(
            hidden_size=1024,
            intermediate_size=2816,
            num_hidden_layers=24,
            num_attention_heads=16,
            num_key_value_heads=16,
        )
    return Qwen2Config(
        vocab_size=vocab_size,
        max_position_embeddings=32768,
        rope_theta=1e6,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        bos_token_id=151643,
        eos_token_id=151645,
        **sizes,
    )


def _vision_config(arch: Arch):
    from transformers import SiglipVisionConfig

    if arch == "tiny":
        return SiglipVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=28,
            patch_size=14,
        )
    # SigLIP-SO400M-384 without its last layer and head, as both 0.5B LLaVA checkpoints ship it.
    return SiglipVisionConfig(
        hidden_size=1152,
        intermediate_size=4304,
        num_hidden_layers=26,
        num_attention_heads=16,
        image_size=384,
        patch_size=14,
        vision_use_head=False,
    )


def built_in_setup(family: str, arch: Arch) -> FamilySetup:
    """A random-weight setup of the published architecture (``full``) or a small one (``tiny``)."""
    from transformers import LlavaConfig, LlavaOnevisionConfig, LlavaProcessor

    if arch not in ARCHS:
        raise ModelSetupError(f"unknown architecture {arch!r}: expected one of {list(ARCHS)}")
    tokenizer = offline_qwen_tokenizer()
    # Tiny: exactly the tokenizer's length. Full: the published 152000 rows (> 151954 tokens).
    vocab = len(tokenizer) if arch == "tiny" else max(152000, len(tokenizer))
    vision = _vision_config(arch)
    size = vision.image_size
    image_processor = _siglip_image_processor(size, SIGLIP_MEAN_STD, SIGLIP_MEAN_STD)
    common = dict(
        vision_config=vision.to_dict(),
        image_token_index=IMAGE_TOKEN_ID,
        projector_hidden_act="gelu",
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
    )
    if family == "m4":
        config = LlavaConfig(text_config=_text_config(arch, vocab, False).to_dict(), **common)
        processor = LlavaProcessor(
            image_processor=image_processor,
            tokenizer=tokenizer,
            patch_size=vision.patch_size,
            vision_feature_select_strategy="full",
            image_token=IMAGE_TOKEN,
        )
        name = "llava-interleave-qwen-0.5b architecture" if arch == "full" else "tiny LlavaForConditionalGeneration"
    else:
        pinpoints = _ONEVISION_PINPOINTS if arch == "full" else [[size, size], [size, 2 * size], [2 * size, size]]
        config = LlavaOnevisionConfig(
            text_config=_text_config(arch, vocab, True).to_dict(),
            video_token_index=VIDEO_TOKEN_ID,
            image_grid_pinpoints=pinpoints,
            vision_aspect_ratio="anyres_max_9",
            **common,
        )
        processor = None
        name = (
            "llava-onevision-qwen2-0.5b architecture"
            if arch == "full"
            else "tiny LlavaOnevisionForConditionalGeneration"
        )
    setup = FamilySetup(
        family, f"{name}, random weights, {size}px images", config, tokenizer, image_processor, processor
    )
    return _with_token_ids(setup)


def pretrained_setup(family: str, path: str | Path) -> FamilySetup:
    """A local llava-hf checkpoint folder: config, tokenizer and processor via ``from_pretrained``."""
    from transformers import AutoConfig, AutoImageProcessor, AutoProcessor, AutoTokenizer

    path = Path(path)
    if not (path / "config.json").is_file():
        raise ModelSetupError(f"{path}: no config.json (expected a llava-hf checkpoint folder)")
    config = AutoConfig.from_pretrained(path, local_files_only=True)
    expected = "llava" if family == "m4" else "llava_onevision"
    if config.model_type != expected:
        option = "--model" if family == "m4" else "--st-model"
        raise ModelSetupError(f"{path}: model_type {config.model_type!r}, but {option} needs a {expected!r} checkpoint")
    if family == "m4":
        processor = AutoProcessor.from_pretrained(path, local_files_only=True)
        tokenizer, image_processor = processor.tokenizer, processor.image_processor
    else:
        # OneVision's video processor needs torchvision; frames go through a SigLIP image
        # processor with the checkpoint's normalization instead (same resize and scaling).
        processor = None
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        if add_st_tokens(tokenizer):
            log.info("%s: added LLaVA-ST tokens to the tokenizer (%d tokens)", path, len(tokenizer))
        ip = AutoImageProcessor.from_pretrained(path, local_files_only=True)
        image_processor = _siglip_image_processor(
            config.vision_config.image_size, list(ip.image_mean), list(ip.image_std)
        )
    setup = FamilySetup(
        family,
        f"{path} ({config.model_type})",
        config,
        tokenizer,
        image_processor,
        processor,
        model_path=path,
    )
    return _with_token_ids(setup)


def _with_token_ids(setup: FamilySetup) -> FamilySetup:
    """Resolve and check the ids of the tokens the inputs are built from."""
    tok = setup.tokenizer
    ids = {"image": single_token_id(tok, IMAGE_TOKEN)}
    if ids["image"] != setup.config.image_token_index:
        raise ModelSetupError(
            f"<image> is id {ids['image']} but the config's image_token_index is {setup.config.image_token_index}"
        )
    if setup.family == "st":
        ids["video"] = single_token_id(tok, VIDEO_TOKEN)
        if ids["video"] != setup.config.video_token_index:
            raise ModelSetupError(
                f"<video> is id {ids['video']} but video_token_index is {setup.config.video_token_index}"
            )
        ids.update({p: single_token_id(tok, p) for p in ST_PLACEHOLDERS})
    setup.token_ids = ids
    return setup
