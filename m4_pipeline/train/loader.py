"""The torch side of the loader: shards to :class:`CheckedSample` in DataLoader workers, and batches.

Shards are read with ``webdataset`` through :func:`m4_pipeline.inspect_shards.iter_samples`.
Inside a DataLoader worker, ``webdataset.WebDataset`` splits the shard list by worker itself
(its default ``split_by_worker``: worker i reads shards i, i+n, ...), so every sample is built
exactly once; parallelism is per shard, and workers beyond the number of shards would idle, so
they are not started.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader, IterableDataset

from ..inspect_shards import iter_samples
from ..media.refs import DataRoots
from .inputs import IGNORE_INDEX, CheckedSample, check_sample
from .models import FamilySetup


class CheckedSamples(IterableDataset):
    """Every sample of the shards, built into model inputs and checked (see :func:`check_sample`)."""

    def __init__(self, paths: list[Path], setups: dict[str, FamilySetup], *, max_length: int,
                 roots: DataRoots | None = None):  # fmt: skip
        super().__init__()
        self.paths = list(paths)
        self.setups = setups
        self.max_length = max_length
        self.roots = roots

    def __iter__(self) -> Iterator[CheckedSample]:
        for shard, sample, error in iter_samples(self.paths):  # this worker's shards only
            yield check_sample(shard, sample, error, self.setups, self.max_length, self.roots)


def sample_loader(paths: list[Path], setups: dict[str, FamilySetup], *, max_length: int, workers: int,
                  roots: DataRoots | None = None) -> DataLoader:  # fmt: skip
    """One sample per item (no collation: batches are formed per family by the caller). ``roots``
    resolve video references (see :mod:`m4_pipeline.media.refs`)."""
    dataset = CheckedSamples(paths, setups, max_length=max_length, roots=roots)
    workers = min(workers, len(paths))
    # forkserver, not fork: the caller may have threads (Ray's, tqdm's), and a worker forked while
    # one of them held a lock (PIL's, the allocator's) hangs for ever on it.
    context = "forkserver" if workers else None
    return DataLoader(dataset, batch_size=None, num_workers=workers, multiprocessing_context=context)


def batch_key(item: CheckedSample) -> tuple:
    """Samples batch together when they go to the same model and their video tensors stack."""
    frames = tuple(item.pixel_values_videos.shape[1:2]) if item.pixel_values_videos is not None else ()
    return (item.family, frames)


def collate(items: list[CheckedSample], *, pad_id: int, device: str, dtype: torch.dtype) -> dict:
    """Right-pad ids (``pad_id``) and labels (-100); concatenate the images / videos of the batch."""
    longest = max(it.length for it in items)
    ids = torch.full((len(items), longest), pad_id, dtype=torch.long)
    labels = torch.full((len(items), longest), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(items), longest), dtype=torch.long)
    for row, it in enumerate(items):
        ids[row, : it.length] = torch.tensor(it.input_ids)
        labels[row, : it.length] = torch.tensor(it.labels)
        mask[row, : it.length] = 1
    batch = {"input_ids": ids.to(device), "labels": labels.to(device), "attention_mask": mask.to(device)}
    for name in ("pixel_values", "pixel_values_videos"):
        tensors = [getattr(it, name) for it in items if getattr(it, name) is not None]
        if tensors:
            batch[name] = torch.cat(tensors).to(device=device, dtype=dtype)
    return batch
