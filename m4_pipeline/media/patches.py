"""LLaVA-NeXT "anyres" multi-patch tiling of a single image."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

DEFAULT_PINPOINTS = [[384, 768], [768, 384], [768, 768], [1152, 384], [384, 1152]]


def select_best_resolution(size: tuple[int, int], pinpoints: list[list[int]]) -> tuple[int, int]:
    """The (width, height) that keeps the most image pixels, then wastes the fewest.

    Same rule as LLaVA-NeXT's ``select_best_resolution``: scale to fit each candidate, count
    the effective pixels (capped by the original's), prefer more effective, then less waste.
    """
    width, height = size
    best, best_eff, best_waste = None, -1, float("inf")
    for cand_w, cand_h in ((p[0], p[1]) for p in pinpoints):
        scale = min(cand_w / width, cand_h / height)
        eff = min(int(width * scale) * int(height * scale), width * height)
        waste = cand_w * cand_h - eff
        if eff > best_eff or (eff == best_eff and waste < best_waste):
            best, best_eff, best_waste = (cand_w, cand_h), eff, waste
    return best


@dataclass
class Patch:
    grid: list[int] | None  # [row, col]; None for the base (whole-image) patch
    image: Image.Image


class AnyresTiler:
    """A base image resized to ``patch_size`` plus the tiles of the best-fit grid."""

    def __init__(self, *, pinpoints: list[list[int]] | None = None, patch_size: int = 384):
        self.pinpoints = pinpoints or DEFAULT_PINPOINTS
        self.patch_size = patch_size

    def grid_for(self, size: tuple[int, int]) -> tuple[int, int]:
        w, h = select_best_resolution(size, self.pinpoints)
        return h // self.patch_size, w // self.patch_size  # rows, cols

    def tile(self, img: Image.Image) -> list[Patch]:
        img = img.convert("RGB")
        target_w, target_h = select_best_resolution(img.size, self.pinpoints)
        scale = min(target_w / img.width, target_h / img.height)
        new_w, new_h = max(1, round(img.width * scale)), max(1, round(img.height * scale))
        canvas = Image.new("RGB", (target_w, target_h), (0, 0, 0))
        canvas.paste(img.resize((new_w, new_h), Image.BICUBIC), ((target_w - new_w) // 2, (target_h - new_h) // 2))
        p = self.patch_size
        patches = [Patch(None, img.resize((p, p), Image.BICUBIC))]
        for row in range(target_h // p):
            for col in range(target_w // p):
                patches.append(Patch([row, col], canvas.crop((col * p, row * p, (col + 1) * p, (row + 1) * p))))
        return patches


class PadToSquare:
    """LLaVA's "pad" preprocessing for multi-image samples: centre the image on a square canvas
    filled with the image processor's mean colour (SigLIP: 0.5 -> 127 on each channel)."""

    def __init__(self, *, mean: tuple[float, float, float] = (0.5, 0.5, 0.5)):
        self.fill = tuple(int(m * 255) for m in mean)

    def apply(self, img: Image.Image) -> Image.Image:
        img = img.convert("RGB")
        side = max(img.size)
        if img.width == img.height:
            return img
        canvas = Image.new("RGB", (side, side), self.fill)
        canvas.paste(img, ((side - img.width) // 2, (side - img.height) // 2))
        return canvas
