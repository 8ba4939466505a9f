"""A softmax classifier trained on cached feature vectors (the "features" mode: the frozen
body runs once, the classifier many epochs over its vectors).

Vectors are standardised with the training set's per-dimension mean and std (summed shard by
shard), the classifier is trained with AdamW and a cosine schedule over minibatches drawn
shard by shard (shards in a new order each epoch, rows shuffled within one), and the epoch
with the best validation accuracy is kept. The standardisation is folded into the returned
weights, so they apply to raw vectors: a drop-in classifier for the layer's output.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from cnnzoo.transfer.cache import FeatureSet


@dataclass
class SoftmaxResult:
    weight: torch.Tensor  # [K, D], on raw vectors
    bias: torch.Tensor  # [K]
    best_epoch: int
    best_val_acc: float | None
    history: list[dict] = field(default_factory=list)


def _stats(fs: FeatureSet) -> tuple[torch.Tensor, torch.Tensor]:
    s = torch.zeros(fs.dim, dtype=torch.float64)
    s2 = torch.zeros(fs.dim, dtype=torch.float64)
    for x, _ in fs.chunks():
        x = torch.from_numpy(np.asarray(x, dtype=np.float64))
        s += x.sum(0)
        s2 += (x * x).sum(0)
    mean = s / max(fs.n, 1)
    std = (s2 / max(fs.n, 1) - mean * mean).clamp_min(0).sqrt()
    return mean.float(), std.float().clamp_min(1e-6)  # a constant dimension stays 0


@torch.no_grad()
def scores(fs: FeatureSet, weight: torch.Tensor, bias: torch.Tensor):
    """(logits [N, K], labels [N]) of a classifier over a feature set, shard by shard."""
    out, ys = [], []
    for x, y in fs.chunks():
        out.append(torch.from_numpy(np.array(x, dtype=np.float32)) @ weight.T + bias)
        ys.append(torch.from_numpy(y))
    k = weight.shape[0]
    return (torch.cat(out) if out else torch.zeros(0, k),
            torch.cat(ys) if ys else torch.zeros(0, dtype=torch.int64))


def accuracy(fs: FeatureSet, weight: torch.Tensor, bias: torch.Tensor) -> float:
    logits, y = scores(fs, weight, bias)
    return (logits.argmax(1) == y).float().mean().item() if len(y) else float("nan")


@contextlib.contextmanager
def _one_thread():
    """Each step is a few small matrix products: measured on 2 busy cores, one thread ran
    50 epochs of 450 vectors in 0.35 s, two (spinning for each other) in 13.5 s."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def fit_softmax(train: FeatureSet, val: FeatureSet | None, num_classes: int, *,
                epochs: int = 50, lr: float = 1e-2, weight_decay: float = 1e-2,
                batch_size: int = 256, label_smoothing: float = 0.0, seed: int = 0,
                on_epoch=None) -> SoftmaxResult:
    """Train `num_classes`-way softmax regression on `train`; pick the epoch by `val`
    (the last one without a validation set). `on_epoch(record)` after each epoch."""
    with _one_thread():
        return _fit(train, val, num_classes, epochs, lr, weight_decay, batch_size,
                    label_smoothing, seed, on_epoch)


def _fit(train, val, num_classes, epochs, lr, weight_decay, batch_size, label_smoothing,
         seed, on_epoch) -> SoftmaxResult:
    g = torch.Generator().manual_seed(seed)
    mean, std = _stats(train)
    lin = torch.nn.Linear(train.dim, num_classes)
    with torch.no_grad():
        lin.weight.normal_(0, 0.01, generator=g)
        lin.bias.zero_()
    opt = torch.optim.AdamW(lin.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = sum(math.ceil(s["n"] / batch_size) for s in train.meta["shards"])
    total, step = max(1, epochs * steps_per_epoch), 0
    shards = list(train.chunks())  # memory-mapped: only the rows a batch reads are loaded

    def folded():
        w = lin.weight.detach() / std
        return w.clone(), (lin.bias.detach() - w @ mean).clone()

    best = (-1.0, 0, *folded())
    history = []
    for epoch in range(1, epochs + 1):
        loss_sum = correct = seen = 0.0
        for si in torch.randperm(len(shards), generator=g).tolist():
            x_all, y_all = shards[si]
            for idx in torch.randperm(len(y_all), generator=g).split(batch_size):
                rows = np.sort(idx.numpy())
                x = (torch.from_numpy(np.asarray(x_all[rows], dtype=np.float32)) - mean) / std
                y = torch.from_numpy(y_all[rows])
                for grp in opt.param_groups:  # cosine over the whole run
                    grp["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / total))
                logits = lin(x)
                loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                loss_sum += loss.item() * len(y)
                correct += (logits.argmax(1) == y).sum().item()
                seen += len(y)
        w, b = folded()
        rec = {"epoch": epoch, "train_loss": loss_sum / max(seen, 1),
               "train_acc": correct / max(seen, 1)}
        if val is not None and val.n:
            rec["val_acc"] = accuracy(val, w, b)
        history.append(rec)
        if on_epoch is not None:
            on_epoch(rec)
        score = rec.get("val_acc", rec["train_acc"] if val is None else -1.0)
        if val is None or score > best[0]:  # without validation: the last epoch
            best = (score, epoch, w, b)
    return SoftmaxResult(best[2], best[3], best[1],
                         best[0] if val is not None and val.n else None, history)
