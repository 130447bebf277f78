"""Where the trainer's batches come from: the whole set on the device, or streamed from disk.

`batch_source(x, device, batch_size, shard)` gives an object with `steps_per_epoch` and
`epoch(order)`, a generator of batches on the device in the order of a permutation of all samples.
- in memory (a numpy array): the set is moved to the device once and each batch is one gather,
  exactly the loop the trainer always ran;
- memory-mapped (app/core/data/mmap.py): a background thread reads, converts and copies the next
  `PREFETCH` batches while the current one trains (the DataLoader pattern over index batches),
  so only a few batches are ever in memory.
`shard = (rank, world)` splits every global batch between processes like PyTorch's
DistributedSampler: the permutation is padded to a multiple of the world size and rank r takes
positions r, r + world, ...; each rank's batch is batch_size / world, so the global batch stays
as set and one step of all ranks sees exactly the samples one process would.
"""

from __future__ import annotations

import math
import queue
import threading

import numpy as np
import torch

from app.core.data.mmap import is_mapped

PREFETCH = 4


def shard_order(order: torch.Tensor, shard: tuple[int, int] | None) -> torch.Tensor:
    if shard is None or shard[1] == 1:
        return order
    rank, world = shard
    total = math.ceil(len(order) / world) * world
    if total > len(order):   # pad by repeating the start, as DistributedSampler does
        order = torch.cat([order, order[:total - len(order)]])
    return order[rank:total:world]


class TensorBatches:
    """The whole set on the device; a batch is one index gather."""

    def __init__(self, x: np.ndarray, device: torch.device, batch_size: int, shard=None):
        self.data = torch.as_tensor(x, device=device)
        self.device = device
        self.shard = shard
        self.batch_size = local_batch_size(batch_size, shard)
        self.steps_per_epoch = math.ceil(math.ceil(len(x) / (shard[1] if shard else 1)) / self.batch_size)

    def __len__(self) -> int:
        return len(self.data)

    def epoch(self, order: torch.Tensor):
        order = shard_order(order, self.shard).to(self.device)
        b = self.batch_size
        for i in range(self.steps_per_epoch):
            yield self.data[order[i * b:(i + 1) * b]]


class StreamedBatches(TensorBatches):
    """Batches read from a memory-mapped set by a prefetch thread."""

    def __init__(self, x, device: torch.device, batch_size: int, shard=None):
        self.data = x
        self.device = device
        self.shard = shard
        self.batch_size = local_batch_size(batch_size, shard)
        self.steps_per_epoch = math.ceil(math.ceil(len(x) / (shard[1] if shard else 1)) / self.batch_size)
        self._pin = device.type == "cuda"

    def epoch(self, order: torch.Tensor):
        order = shard_order(order, self.shard).numpy()
        b = self.batch_size
        batches: queue.Queue = queue.Queue(maxsize=PREFETCH)
        stop = threading.Event()

        def produce() -> None:
            try:
                for i in range(self.steps_per_epoch):
                    idx = np.sort(order[i * b:(i + 1) * b])   # sorted: fewer, forward page reads
                    batch = torch.from_numpy(self.data[idx])
                    if self._pin:
                        batch = batch.pin_memory()
                    while not stop.is_set():
                        try:
                            batches.put(batch, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
            except BaseException as exc:  # noqa: BLE001 - handed to the training thread, raised there
                batches.put(exc)

        worker = threading.Thread(target=produce, name="batch-prefetch", daemon=True)
        worker.start()
        try:
            for _ in range(self.steps_per_epoch):
                item = batches.get()
                if isinstance(item, BaseException):
                    raise item
                yield item.to(self.device, non_blocking=self._pin)
        finally:
            stop.set()
            worker.join(timeout=5)


class StreamedEval:
    """Validation data read from disk slice by slice (Trainer.evaluate slices it)."""

    def __init__(self, x, device: torch.device):
        self.data = x
        self.device = device

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key: slice) -> torch.Tensor:
        return torch.from_numpy(self.data[key]).to(self.device)


def local_batch_size(batch_size: int, shard) -> int:
    if shard is None:
        return batch_size
    from app.core.errors import ConfigError

    world = shard[1]
    if batch_size % world:
        raise ConfigError(f"the batch size {batch_size} does not split evenly between {world} processes; "
                          f"use a multiple of {world} (the batch size is the global one, summed over processes)")
    return batch_size // world


def batch_source(x, device: torch.device, batch_size: int, shard=None) -> TensorBatches:
    if is_mapped(x):
        return StreamedBatches(x, device, batch_size, shard)
    return TensorBatches(x, device, batch_size, shard)


def eval_source(x, device: torch.device):
    """What Trainer.evaluate slices: a device tensor, or slices read from disk; None without data."""
    if x is None or len(x) == 0:
        return None
    return StreamedEval(x, device) if is_mapped(x) else torch.as_tensor(x, device=device)
