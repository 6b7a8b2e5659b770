"""LLaVA-ST's visual tokens: how many positions ``<image>`` and ``<video>`` take, and features of that shape.

LLaVA-ST (github.com/appletea233/LLaVA-ST, ``llava/model/llava_arch.py`` ``VisionConfig`` and
``llava/train/train.py`` ``preprocess_multimodal``; read, not run) does not use OneVision's
pooling:

- ``<image>`` becomes ``image_token_num`` = 729 positions: the 27x27 SigLIP-384 patch grid of
  the image squashed to 384x384 (start token, 727 patch tokens, end token), one "frame" for LAPE;
- ``<video>`` becomes a fast span of 100 frames x 9 tokens (3x3 per frame) and a slow span of
  20 frames x 81 tokens (9x9 per frame): 900 + 1620 = 2520 positions, whatever the video.

The trainer check counts exactly these, so its length and truncation checks are LLaVA-ST's. For
the model pass it needs visual features of the same shape: :func:`st_encoder_outputs` runs the
model's own vision tower and projector and resamples each feature grid to LLaVA-ST's (adaptive
average pooling over frames, height and width; LLaVA-ST's learned resampler is not reproduced),
then hands them to ``LlavaOnevisionForConditionalGeneration`` as ``mm_encoder_outputs``, which it
scatters into the ``<image>`` / ``<video>`` positions unchanged.
"""

from __future__ import annotations

import math

IMAGE_GRID = 27  # 384 px / 14 px patches
FAST = (100, 3)  # frames, grid side: 9 tokens per frame
SLOW = (20, 9)  # frames, grid side: 81 tokens per frame
ST_IMAGE_TOKENS = IMAGE_GRID**2  # 729
ST_VIDEO_TOKENS = FAST[0] * FAST[1] ** 2 + SLOW[0] * SLOW[1] ** 2  # 2520


def _grids(model, pixels):
    """(n, side, side, hidden) features of ``pixels`` (n, 3, S, S): vision tower, layer, projector."""
    config = model.config
    layer = config.vision_feature_layer
    if not isinstance(layer, int):
        raise ValueError(f"vision_feature_layer {layer!r}: the ST check supports one layer")
    out = model.model.vision_tower(pixels, output_hidden_states=True, return_dict=True)
    feats = out.hidden_states[layer]
    if config.vision_feature_select_strategy == "default":
        feats = feats[:, 1:]
    feats = model.model.multi_modal_projector(feats)
    side = math.isqrt(feats.shape[1])
    if side * side != feats.shape[1]:
        raise ValueError(f"{feats.shape[1]} vision tokens per image are not a square grid")
    return feats.reshape(feats.shape[0], side, side, feats.shape[-1])


def _pool(grid, frames: int, side: int):
    """(T, h, w, D) -> (frames * side * side, D) by adaptive average pooling over time and space."""
    import torch.nn.functional as F

    x = grid.permute(3, 0, 1, 2).unsqueeze(0)  # (1, D, T, h, w)
    x = F.adaptive_avg_pool3d(x, (frames, side, side))
    return x[0].permute(1, 2, 3, 0).reshape(frames * side * side, -1)


def st_encoder_outputs(model, pixel_values=None, pixel_values_videos=None) -> dict:
    """``mm_encoder_outputs`` for a batch: 729 features per image, 2520 per video, in batch order."""
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    outputs = {}
    if pixel_values is not None:
        grids = _grids(model, pixel_values)
        outputs["image"] = BaseModelOutputWithPooling(
            pooler_output=[_pool(g.unsqueeze(0), 1, IMAGE_GRID) for g in grids]
        )
    if pixel_values_videos is not None:
        n, frames = pixel_values_videos.shape[:2]
        grids = _grids(model, pixel_values_videos.flatten(0, 1))
        grids = grids.reshape(n, frames, *grids.shape[1:])
        import torch

        videos = [torch.cat([_pool(v, *FAST), _pool(v, *SLOW)]) for v in grids]
        outputs["video"] = BaseModelOutputWithPooling(pooler_output=torch.stack(videos))
    return outputs
