"""Batches for training: cut, moved, augmented and normalised a whole batch at a time.

In-memory datasets: a background thread (the lecture's "CPU thread makes distorted
minibatches while the network trains") fills a bounded queue; torch ops release the GIL,
so it overlaps the model's step. Image folders: a torch DataLoader decodes with workers,
then the same batched augmentation runs on the device.

The order and augmentation randomness of epoch e come from (seed, e) only, so a run resumed
at an epoch boundary sees exactly the batches it would have seen. With world_size > 1 each
rank takes every world_size-th sample of the shared order, so the shards are disjoint:
  - training (shuffle=True): equal length per rank (DDP steps in lockstep); the tail is
    padded by wrapping (drop_last=False, so every sample is seen) or cut (drop_last=True);
  - evaluation (shuffle=False, drop_last=False): no padding, every sample on exactly one
    rank, shard lengths differ by at most one, so summed metrics count each image once.
"""

from __future__ import annotations

import math
import queue
import threading
import time
import warnings

import torch

from cnnzoo.data.folder import ImageFolderDataset, collate
from cnnzoo.errors import DataError

_MIX = 0x9E3779B97F4A7C15  # odd 64-bit constant: spreads (seed, epoch, rank, batch) apart


def _seed(*parts: int) -> int:
    h = 0
    for p in parts:
        h = (h * _MIX + int(p) + 1) % (1 << 63)
    return h


def shard_order(n, *, shuffle, seed, epoch, rank=0, world_size=1, drop_last=False):
    """This rank's sample indices for one epoch (see the module doc for the padding rule)."""
    if not 0 <= rank < world_size:
        raise DataError(f"rank {rank} outside world_size {world_size}")
    if shuffle:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(_seed(seed, epoch)))
    else:
        order = torch.arange(n)
    if world_size > 1:
        if drop_last:
            order = order[: n // world_size * world_size]
        elif shuffle:  # training: equal shards for lockstep steps; eval is never padded
            total = math.ceil(n / world_size) * world_size
            if n and total > n:
                order = order[torch.arange(total) % n]  # wraps, even when n < world_size
        order = order[rank::world_size]
    return order


class _Loader:
    """Shared parts: epoch bookkeeping, order, normalisation, wait-time accounting."""

    def __init__(self, dataset, batch_size, *, shuffle, augment, mean, std, device, seed,
                 drop_last, rank, world_size, channels_last):
        if batch_size < 1:
            raise DataError(f"batch_size must be >= 1, got {batch_size}")
        self.dataset, self.batch_size, self.shuffle = dataset, batch_size, shuffle
        self.augment, self.seed, self.drop_last = augment, seed, drop_last
        self.rank, self.world_size, self.channels_last = rank, world_size, channels_last
        self.device = torch.device(device)
        c = dataset.image_shape[0]
        self.mean = torch.tensor(mean if mean is not None else [0.0] * c,
                                 dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor(std if std is not None else [1.0] * c,
                                dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        if self.mean.numel() not in (1, c) or self.std.numel() not in (1, c):
            raise DataError(f"mean/std need {c} values (one per channel)")
        self.epoch = 0
        self.wait_time = 0.0
        shard = len(self.order(0))
        self._len = shard // batch_size if drop_last else math.ceil(shard / batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self._len

    def order(self, epoch: int) -> torch.Tensor:
        return shard_order(len(self.dataset), shuffle=self.shuffle, seed=self.seed,
                           epoch=epoch, rank=self.rank, world_size=self.world_size,
                           drop_last=self.drop_last)

    def _batches(self, order):
        bs = self.batch_size
        return [order[i * bs : (i + 1) * bs] for i in range(self._len)]

    def _finish(self, xb: torch.Tensor, yb: torch.Tensor, epoch: int, i: int):
        """uint8 batch -> device float, augmented with the batch's own generator, normalised."""
        x = xb.to(self.device, non_blocking=True).to(torch.float32).div_(255)
        if self.augment is not None:
            g = torch.Generator(device=self.device)
            g.manual_seed(_seed(self.seed, epoch, self.rank, i))
            x = self.augment(x, g)
        x = x.sub_(self.mean).div_(self.std)  # in place: x is this batch's own tensor
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, yb.to(self.device, non_blocking=True)


class ArrayLoader(_Loader):
    """Batches of an `ArrayDataset`, made by a background thread a few batches ahead.

    Batches are made `chunk` at a time (one index, one augmentation pass over chunk x batch
    images, then split): fewer, larger tensor ops mean fewer GIL hand-offs between this
    thread and the training loop, which on a 2-core CPU cost more than the work itself.
    """

    def __init__(self, *args, prefetch=True, chunk: int = 8, prefetch_threads: int = 1, **kw):
        super().__init__(*args, **kw)
        # Chunks stay small for large images (<= 8M values in flight per chunk).
        per_batch = self.batch_size * self.dataset.images[0].numel()
        chunk = max(1, min(chunk, (8 << 20) // max(1, per_batch)))
        self.prefetch, self.chunk, self.prefetch_threads = prefetch, chunk, prefetch_threads
        self.depth = max(2, 2 * self.chunk)  # queue bound, in batches
        pin = self.device.type == "cuda"
        self._images = self.dataset.images.pin_memory() if pin else self.dataset.images
        self._labels = self.dataset.labels

    def _make(self, group: list[torch.Tensor], epoch: int, ci: int):
        """The batches of chunk `ci`; its randomness comes from (seed, epoch, rank, ci)."""
        idx = torch.cat(group)
        x, y = self._finish(self._images[idx], self._labels[idx], epoch, ci)
        sizes = [len(g) for g in group]
        return list(zip(x.split(sizes), y.split(sizes)))

    def _groups(self, epoch):
        batches = self._batches(self.order(epoch))
        return [batches[i : i + self.chunk] for i in range(0, len(batches), self.chunk)]

    def __iter__(self):
        epoch = self.epoch
        groups = self._groups(epoch)
        if not self.prefetch:
            for ci, group in enumerate(groups):
                t0 = time.perf_counter()
                items = self._make(group, epoch, ci)
                self.wait_time += time.perf_counter() - t0
                yield from items
        else:
            yield from self._prefetched(groups, epoch)
        self.epoch = epoch + 1  # a full pass moves on; set_epoch() overrides

    def _prefetched(self, groups, epoch):
        q: queue.Queue = queue.Queue(maxsize=self.depth)
        stop = threading.Event()
        end = object()

        def work():
            # Own intra-op thread count (OpenMP's is per OS thread): two full-width OpenMP
            # teams spinning on 2 cores slow both the trainer and this thread many-fold.
            restore = torch.get_num_threads()
            if self.prefetch_threads:
                torch.set_num_threads(self.prefetch_threads)
            try:
                for ci, group in enumerate(groups):
                    for item in self._make(group, epoch, ci):
                        while not stop.is_set():
                            try:
                                q.put(item, timeout=0.1)
                                break
                            except queue.Full:
                                continue
                        if stop.is_set():
                            return
                item = end
            except BaseException as e:  # handed to the consumer, raised there
                item = e
            finally:
                torch.set_num_threads(restore)  # PyTorch seeds new threads from the last value
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue

        t = threading.Thread(target=work, name="cnnzoo-prefetch", daemon=True)
        t.start()
        try:
            while True:
                t0 = time.perf_counter()
                item = q.get()
                self.wait_time += time.perf_counter() - t0
                if item is end:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            t.join()


class FolderLoader(_Loader):
    """Batches of an `ImageFolderDataset` through a torch DataLoader with Pillow workers."""

    def __init__(self, *args, num_workers: int | None = None, **kw):
        kw.pop("prefetch", None)
        super().__init__(*args, **kw)
        self.num_workers = min(2, torch.get_num_threads()) if num_workers is None else num_workers
        self.skipped: list[str] = []

    def __iter__(self):
        epoch = self.epoch
        order = self.order(epoch).tolist()
        if self.drop_last:
            order = order[: self._len * self.batch_size]
        dl = torch.utils.data.DataLoader(
            self.dataset, batch_size=self.batch_size, sampler=order, collate_fn=collate,
            num_workers=self.num_workers, pin_memory=self.device.type == "cuda")
        it = iter(dl)
        for i in range(self._len):
            t0 = time.perf_counter()
            xb, yb, errs = next(it)
            bad = [j for j, e in enumerate(errs) if e]
            for j in bad:
                if self.dataset.on_error == "raise":
                    raise DataError(f"cannot read image {errs[j]}")
                if errs[j] not in self.skipped:
                    self.skipped.append(errs[j])
                    warnings.warn(f"skipped unreadable image {errs[j]}", stacklevel=2)
            if bad:
                keep = torch.tensor([j for j in range(len(errs)) if not errs[j]], dtype=torch.long)
                if not len(keep) and self.world_size > 1:
                    # skipping it would leave this rank one step short: the others would
                    # wait for it at the next gradient all-reduce forever
                    raise DataError(f"rank {self.rank}: every image of batch {i + 1} is "
                                    f"unreadable, e.g. {errs[0]}")
                xb, yb = xb[keep], yb[keep]
            item = self._finish(xb, yb, epoch, i)
            self.wait_time += time.perf_counter() - t0
            if len(item[1]):
                yield item
        self.epoch = epoch + 1


def build_loader(dataset, batch_size, *, shuffle, augment=None, mean=None, std=None,
                 device="cpu", seed=0, drop_last=False, rank=0, world_size=1, prefetch=True,
                 channels_last=False, num_workers=None, prefetch_threads=1, chunk=8):
    """An iterable of (x float32 normalised on `device`, y int64) batches; see module doc."""
    kw = dict(shuffle=shuffle, augment=augment, mean=mean, std=std, device=device, seed=seed,
              drop_last=drop_last, rank=rank, world_size=world_size,
              channels_last=channels_last)
    if isinstance(dataset, ImageFolderDataset):
        return FolderLoader(dataset, batch_size, num_workers=num_workers, **kw)
    return ArrayLoader(dataset, batch_size, prefetch=prefetch, prefetch_threads=prefetch_threads,
                       chunk=chunk, **kw)
