"""Configuration of near-duplicate detection and decontamination (keyword-only, validated)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .text import MinHashConfig

Policy = Literal["text", "media", "both"]
TextLevel = Literal["conversation", "turn"]


@dataclass(frozen=True, kw_only=True)
class NearDupConfig:
    """What makes two samples near-duplicates.

    ``policy`` decides for samples with media: ``media`` (every aligned slot is a near-duplicate
    image / video), ``text`` (the conversations are near-duplicates) or ``both`` (the safe
    default: the same question over a different image is a different sample, and so is another
    question over the same image). Samples without media are compared by text alone.
    ``text_level``: ``conversation`` compares the whole conversation as one document;
    ``turn`` requires the same number of turns and every aligned turn pair to be similar
    (a long shared answer then cannot hide a different question).
    """

    image_threshold: int = 6  # max Hamming distance between two images' 64-bit pHashes
    video_threshold: float = 6.0  # max mean Hamming distance between aligned frame hashes
    video_representatives: int = 3  # frames per video slot put in the LSH (first, middle, last)
    max_video_frames: int = 16  # frames hashed per video slot (uniformly chosen)
    text_threshold: float = 0.8  # min estimated Jaccard of word shingles
    text_level: TextLevel = "conversation"
    policy: Policy = "both"
    minhash: MinHashConfig = field(default_factory=MinHashConfig)
    jpeg_draft: bool = False  # faster pHash of JPEG bytes, not bit-identical to imagehash
    lsh_blocks: int | None = None  # pHash LSH blocks (None: chosen from the number of hashes)

    def __post_init__(self) -> None:
        if not 0 <= self.image_threshold < 32:
            raise ValueError(f"image_threshold must be in [0, 32), got {self.image_threshold}")
        if not 0 <= self.video_threshold < 32:
            raise ValueError(f"video_threshold must be in [0, 32), got {self.video_threshold}")
        if self.video_representatives < 1 or self.max_video_frames < self.video_representatives:
            raise ValueError("need 1 <= video_representatives <= max_video_frames")
        if not 0.0 < self.text_threshold <= 1.0:
            raise ValueError(f"text_threshold must be in (0, 1], got {self.text_threshold}")
        if self.policy not in ("text", "media", "both"):
            raise ValueError(f"policy must be 'text', 'media' or 'both', got {self.policy!r}")
        if self.text_level not in ("conversation", "turn"):
            raise ValueError(f"text_level must be 'conversation' or 'turn', got {self.text_level!r}")


@dataclass(frozen=True, kw_only=True)
class DecontamConfig:
    """What counts as contamination by a benchmark item."""

    image_threshold: int = 6  # pHash Hamming distance for a near-duplicate image
    question_threshold: float = 0.8  # estimated Jaccard for a near-duplicate question
    min_question_words: int = 4  # shorter questions ("What is this?") are too generic to flag
    video_frames: int = 8  # frames hashed per benchmark video (0: match videos by id and file only)
    frame_matches: int = 2  # training frames of one slot that must match one benchmark video
    minhash: MinHashConfig = field(default_factory=MinHashConfig)

    def __post_init__(self) -> None:
        if not 0 <= self.image_threshold < 32:
            raise ValueError(f"image_threshold must be in [0, 32), got {self.image_threshold}")
        if not 0.0 < self.question_threshold <= 1.0:
            raise ValueError(f"question_threshold must be in (0, 1], got {self.question_threshold}")
        if self.video_frames < 0 or self.frame_matches < 1 or self.min_question_words < 0:
            raise ValueError("video_frames >= 0, frame_matches >= 1 and min_question_words >= 0 required")
