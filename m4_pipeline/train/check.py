"""``m4 check-train``: prove that shards train, pass by pass.

1. Loader pass: every sample is read with webdataset, rendered, tokenized, its media processed
   and checked (:mod:`.inputs`), in DataLoader workers. Timed alone: the loader's samples/s.
2. Model pass: the samples that passed are read again and fed, in batches per family, to the
   real transformers model: forward (finite loss) and backward (finite gradient norm). When a
   batch fails, its samples are retried one by one so the failure names a sample. Timed: the
   samples/s of loader and model together.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np
import torch

from ..inspect_shards import shard_paths
from ..media.refs import DataRoots
from .inputs import IGNORE_INDEX, REASONS, SKIP_REASONS, CheckedSample, Failure
from .loader import batch_key, collate, sample_loader
from .models import Arch, FamilySetup, built_in_setup, pretrained_setup

log = logging.getLogger(__name__)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class CheckOptions:
    max_length: int = 32768  # the Qwen 0.5B LLaVA checkpoints' context (max_position_embeddings)
    batch_size: int = 2
    workers: int = 2
    arch: Arch = "tiny"
    model: Path | None = None  # a local llava-hf LlavaForConditionalGeneration folder (M4)
    st_model: Path | None = None  # a local llava-hf LlavaOnevisionForConditionalGeneration folder (ST)
    device: str = "cpu"
    dtype: str = "float32"
    run_model: bool = True
    limit: int | None = None  # check only the first N samples
    data_roots: dict[str, str] = field(default_factory=dict)  # video references: root name -> folder

    def __post_init__(self) -> None:
        if self.max_length < 1 or self.batch_size < 1 or self.workers < 0:
            raise ValueError("max_length and batch_size must be >= 1 and workers >= 0")
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}: expected one of {sorted(DTYPES)}")


def family_setups(options: CheckOptions) -> dict[str, FamilySetup]:
    m4 = pretrained_setup("m4", options.model) if options.model else built_in_setup("m4", options.arch)
    st = pretrained_setup("st", options.st_model) if options.st_model else built_in_setup("st", options.arch)
    return {"m4": m4, "st": st}


def run_check(shards: str | Path, options: CheckOptions, setups: dict[str, FamilySetup] | None = None) -> dict:
    """Check the shards (a folder or one .tar); return the report (see :func:`format_report`)."""
    paths = shard_paths(shards)
    setups = setups or family_setups(options)
    failures: list[Failure] = []
    skipped: list[tuple[str, str, str]] = []
    lengths: dict[str, list[int]] = defaultdict(list)
    passed: set[str] = set()
    count = 0
    started = time.perf_counter()
    roots = DataRoots.for_shards(shards, options.data_roots)
    loader = sample_loader(paths, setups, max_length=options.max_length, workers=options.workers, roots=roots)
    for item in islice(loader, options.limit):
        count += 1
        failures += item.failures
        if item.skipped:
            skipped.append((item.key, item.shard, item.skipped))
        if item.input_ids:
            lengths[item.family].append(item.length)
        if item.trainable:
            passed.add(item.key)
    loader_s = time.perf_counter() - started
    log.info("loader pass: %d samples, %d failures, %.1f s", count, len(failures), loader_s)
    report = {
        "shards": len(paths),
        "samples": count,
        "families": {f: len(v) for f, v in sorted(lengths.items())},
        "models": {f: s.description for f, s in setups.items() if f in lengths},
        "max_length": options.max_length,
        "token_length": {
            "all": _distribution([n for v in lengths.values() for n in v]),
            **{f: _distribution(v) for f, v in sorted(lengths.items())},
        },
        "throughput": {
            "workers": loader.num_workers,
            "loader_seconds": round(loader_s, 3),
            "loader_samples_per_s": _rate(count, loader_s),
        },
    }
    if options.run_model and passed:
        model_failures, model_stats = _model_pass(paths, setups, options, passed)
        failures += model_failures
        report["throughput"].update(model_stats.pop("throughput"))
        report["model"] = model_stats
    failed = {f.key for f in failures}
    report["passed"] = count - len(failed) - len({k for k, _, _ in skipped} - failed)
    report["failed"] = len(failed)
    report["failures"] = _group([(f.reason, {"key": f.key, "shard": f.shard, "detail": f.detail}) for f in failures])
    report["skipped"] = _group([(d.split(":", 1)[0], {"key": k, "shard": s, "detail": d}) for k, s, d in skipped])
    report["ok"] = not failures
    return report


def _model_pass(paths, setups, options: CheckOptions, passed: set[str]) -> tuple[list[Failure], dict]:
    device, dtype = options.device, DTYPES[options.dtype]
    models: dict[str, torch.nn.Module] = {}
    failures: list[Failure] = []
    losses: dict[str, list[float]] = defaultdict(list)
    pending: dict[tuple, list[CheckedSample]] = defaultdict(list)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
    build_s = 0.0

    def run(items: list[CheckedSample]) -> None:
        nonlocal build_s
        family = items[0].family
        if family not in models:
            t = time.perf_counter()
            models[family] = setups[family].build_model(device).to(dtype=dtype).train()
            build_s += time.perf_counter() - t
            log.info("built the %s model on %s in %.1f s", family, device, time.perf_counter() - t)
        problems = _train_step(models[family], setups[family], items, device, dtype, losses[family])
        if problems and len(items) > 1:  # find the culprit(s)
            for item in items:
                failures.extend(_train_step(models[family], setups[family], [item], device, dtype, []))
        else:
            failures.extend(problems)

    fed = 0
    started = time.perf_counter()
    roots = DataRoots.for_shards(paths[0], options.data_roots)
    loader = sample_loader(paths, setups, max_length=options.max_length, workers=options.workers, roots=roots)
    for item in loader:
        if item.key not in passed:
            continue
        fed += 1
        key = batch_key(item)
        pending[key].append(item)
        if len(pending[key]) == options.batch_size:
            run(pending.pop(key))
        if fed == len(passed):
            break
    for items in pending.values():
        run(items)
    seconds = time.perf_counter() - started - build_s
    stats = {
        "samples": fed,
        "mean_loss": {f: round(float(np.mean(v)), 4) for f, v in sorted(losses.items()) if v},
        "device": device,
        "dtype": options.dtype,
        "throughput": {
            "model_seconds": round(seconds, 3),
            "model_build_seconds": round(build_s, 3),
            "model_samples_per_s": _rate(fed, seconds),
            "batch_size": options.batch_size,
        },
    }
    if device.startswith("cuda"):
        stats["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return failures, stats


def _train_step(
    model,
    setup: FamilySetup,
    items: list[CheckedSample],
    device: str,
    dtype: torch.dtype,
    losses: list[float],
) -> list[Failure]:
    """Forward and backward on one batch; the failures it shows, attributed to every sample in it."""

    def fail(reason: str, detail: str) -> list[Failure]:
        return [Failure(it.key, it.shard, reason, detail) for it in items]

    batch = collate(items, pad_id=setup.tokenizer.pad_token_id or 0, device=device, dtype=dtype)
    try:
        try:
            loss = _trained_loss(model, setup.model_inputs(model, batch))
        except (ValueError, RuntimeError, IndexError) as err:
            return fail("forward_error", f"{type(err).__name__}: {str(err)[:300]}")
        if not torch.isfinite(loss):
            return fail("non_finite_loss", f"loss {loss.item()}")
        try:
            loss.backward()
        except RuntimeError as err:
            return fail("backward_error", f"{type(err).__name__}: {str(err)[:300]}")
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
        if not torch.isfinite(norm):
            return fail("non_finite_grad", f"gradient norm {norm.item()}")
        losses.append(loss.item())
        return []
    finally:
        model.zero_grad(set_to_none=True)


def _trained_loss(model, inputs: dict) -> torch.Tensor:
    """The causal-LM loss (mean over trained tokens, as transformers' ``ForCausalLMLoss``) with
    logits computed only at the positions that predict a trained token: an ST sample is ~2600
    positions long and the vocabulary 152K, so full logits would cost gigabytes for nothing."""
    labels = inputs.pop("labels")
    targets = labels[:, 1:]
    keep = (targets != IGNORE_INDEX).any(0).nonzero().flatten()
    logits = model(**inputs, logits_to_keep=keep).logits
    picked = targets[:, keep]
    return torch.nn.functional.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), picked.reshape(-1), ignore_index=IGNORE_INDEX
    )


def _rate(n: int, seconds: float) -> float:
    return round(n / seconds, 2) if seconds > 0 else 0.0


def _distribution(values: list[int]) -> dict:
    if not values:
        return {"samples": 0}
    arr = np.asarray(values)
    return {
        "samples": len(values),
        "min": int(arr.min()),
        "median": float(np.median(arr)),
        "p95": float(np.percentile(arr, 95)),
        "max": int(arr.max()),
    }


def _group(pairs: list[tuple[str, dict]]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for reason, entry in pairs:
        out[reason].append(entry)
    return {k: sorted(v, key=lambda e: e["key"]) for k, v in sorted(out.items())}


def format_report(report: dict, *, max_keys: int = 10) -> str:
    """The report as a table for the terminal."""
    lines = [
        f"{report['samples']} samples in {report['shards']} shard(s) "
        f"({', '.join(f'{f}: {n}' for f, n in report['families'].items())}): "
        f"{report['passed']} passed, {report['failed']} failed, "
        f"{sum(len(v) for v in report['skipped'].values())} skipped"
    ]
    for family, desc in report["models"].items():
        lines.append(f"  {family} model: {desc}")
    lines += ["", f"{'token length':<14}{'samples':>9}{'min':>8}{'median':>9}{'p95':>9}{'max':>8}"]
    for name, d in report["token_length"].items():
        if d["samples"]:
            lines.append(f"{name:<14}{d['samples']:>9}{d['min']:>8}{d['median']:>9.0f}{d['p95']:>9.0f}{d['max']:>8}")
    t = report["throughput"]
    lines += [
        "",
        f"{'throughput':<28}{'samples/s':>10}",
        f"{'loader alone (' + str(t['workers']) + ' workers)':<28}{t['loader_samples_per_s']:>10}",
    ]
    if "model_samples_per_s" in t:
        m = report["model"]
        lines.append(f"{'loader + model (batch ' + str(t['batch_size']) + ')':<28}{t['model_samples_per_s']:>10}")
        extra = f"; peak GPU memory {m['peak_gpu_memory_gib']} GiB" if "peak_gpu_memory_gib" in m else ""
        lines.append(
            f"  {m['samples']} samples through forward+backward on {m['device']} ({m['dtype']}); "
            f"mean loss {m['mean_loss']}{extra}"
        )
    for title, groups, legend in (
        ("failures", report["failures"], REASONS),
        ("skipped", report["skipped"], SKIP_REASONS),
    ):
        if not groups:
            continue
        lines += ["", f"{title} by reason:"]
        for reason, entries in groups.items():
            lines.append(f"  {reason} ({len(entries)}): {legend.get(reason, '')}")
            for e in entries[:max_keys]:
                lines.append(f"    {e['key']} [{e['shard']}]: {e['detail']}")
            if len(entries) > max_keys:
                lines.append(f"    ... {len(entries) - max_keys} more (--json lists all)")
    lines += ["", "OK: the shards train" if report["ok"] else "FAILED"]
    return "\n".join(lines)
