"""What the training studies share: the data of a budget, a short training loop, accuracy.

The loop is ours, not `cnnzoo.train.train`, because the studies train dozens of small nets
on seeded class-balanced subsets held in memory, some of them built here (not registered),
and then edit and re-test them in memory; the trainer's run folders would be dead weight.
Batches, augmentation and test-time views are the library's (build_loader, build_augment,
tta_views).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnzoo.casestudy.core import Context, mean, spread
from cnnzoo.casestudy.core import png_bytes as png  # noqa: F401  (the studies' one import)

# What each budget trains on: tiny = a learnable synthetic set made in memory (a test of
# the report's structure, seconds, no files); small = Fashion-MNIST; full = CIFAR-10.
DATASET = {"tiny": "synthetic", "small": "fashion-mnist", "full": "cifar10"}


def pick(ctx: Context, tiny, small, full):
    """The setting of ctx.budget."""
    return {"tiny": tiny, "small": small, "full": full}[ctx.budget]


@dataclass
class Data:
    train: object  # ArrayDataset (uint8 images)
    test: object
    mean: list[float]
    std: list[float]
    name: str

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.train.image_shape)

    @property
    def num_classes(self) -> int:
        return len(self.train.classes)

    def describe(self) -> str:
        return (f"{self.name}: {len(self.train):,} training and {len(self.test):,} test images "
                f"of {'x'.join(map(str, self.shape))}, {self.num_classes} classes")


def load(ctx: Context, per_class: int | None, test_per_class: int | None = None,
         classes=None, seed: int = 0) -> Data:
    """The budget's dataset, optionally a class subset (relabelled 0..k-1) and a seeded draw
    of `per_class` training / `test_per_class` test images per class (None: all)."""
    from cnnzoo.data.subset import subset

    name = DATASET[ctx.budget]
    kw = {}
    if name == "synthetic":  # tiny: just enough images for every class to appear
        kw = dict(num_samples=10 * (per_class or 20), channels=1, size=16)
    train = _read(name, "train", ctx.data_dir, **kw)
    test = _read(name, "test", ctx.data_dir,
                 **(kw and {**kw, "num_samples": 10 * (test_per_class or 20)}))
    if classes is not None or per_class is not None:
        spec = classes if classes is not None else f"0-{len(train.classes) - 1}"
        train = subset(train, spec, per_class=per_class, seed=seed)
        test = subset(test, spec, per_class=test_per_class, seed=seed)
    m, s = train.channel_stats()
    return Data(train, test, m, s, train.name)


_CACHE: dict = {}


def _read(name: str, split: str, data_dir, **kw):
    """load_dataset, once per process: studies draw many subsets of one split."""
    from cnnzoo.data import load_dataset

    key = (name, split, data_dir, tuple(sorted(kw.items())))
    if key not in _CACHE:
        _CACHE[key] = load_dataset(name, split, data_dir=data_dir, **kw)
    return _CACHE[key]


def loader(data: Data, ds, batch_size: int, device, *, shuffle=False, augment=None,
           seed=0, normalise=True):
    from cnnzoo.data import build_loader

    return build_loader(ds, batch_size, shuffle=shuffle, augment=augment,
                        mean=data.mean if normalise else None,
                        std=data.std if normalise else None, device=device, seed=seed,
                        drop_last=shuffle and len(ds) >= batch_size, prefetch=False,
                        channels_last=device.type == "cpu")


def lr_at(t: float, warmup: float, milestones: list[float] | None) -> float:
    """Factor of the peak lr at progress t in [0, 1]: linear warm-up over the first `warmup`,
    then cosine to zero, or /10 at each of `milestones` (fractions of the run)."""
    if t < warmup:
        return (t + 1e-3) / warmup
    if milestones is not None:
        return 0.1 ** sum(t >= m for m in milestones)
    return 0.5 * (1 + math.cos(math.pi * (t - warmup) / (1 - warmup)))


@dataclass
class Fit:
    """One network being trained, an epoch at a time, so that several can take turns
    (machine noise then hits them alike, which matters when their times are compared)."""

    model: nn.Module
    data: Data
    epochs: int
    device: torch.device
    seed: int = 0
    batch_size: int = 128
    lr: float = 0.1
    optimizer: str = "sgd"  # "sgd" (momentum 0.9) or "adamw"
    weight_decay: float = 5e-4
    augment: str | None = None
    warmup: float = 0.05
    milestones: list[float] | None = None
    params: list | None = None  # only these are trained (default: all)
    history: list[dict] = field(default_factory=list)

    def __post_init__(self):
        from cnnzoo.data import build_augment

        fmt = torch.channels_last if self.device.type == "cpu" else torch.preserve_format
        self.model.to(self.device, memory_format=fmt)
        c, h, w = self.data.shape
        aug = build_augment(self.augment, image_size=(h, w), channels=c)
        bs = min(self.batch_size, len(self.data.train))
        self.loader = loader(self.data, self.data.train, bs, self.device, shuffle=True,
                             augment=aug, seed=self.seed)
        params = self.params if self.params is not None else [
            p for p in self.model.parameters() if p.requires_grad]
        if self.optimizer == "sgd":
            self.opt = torch.optim.SGD(params, lr=self.lr, momentum=0.9,
                                       weight_decay=self.weight_decay)
        else:
            self.opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        self.total = self.epochs * len(self.loader)
        self.step = 0

    def epoch(self) -> dict:
        """One pass over the training set; returns (and keeps) its loss, accuracy, seconds."""
        self.model.train()
        for m in self.model.modules():  # frozen batch norm keeps its statistics too
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(
                    p.requires_grad for p in m.parameters()):
                m.eval()
        self.loader.set_epoch(len(self.history))
        loss_sum, correct, n = 0.0, 0, 0
        t0 = time.perf_counter()
        for x, y in self.loader:
            for g in self.opt.param_groups:
                g["lr"] = self.lr * lr_at(self.step / self.total, self.warmup, self.milestones)
            out = self.model(x)
            loss = F.cross_entropy(out, y)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.step += 1
            loss_sum += loss.item() * len(y)
            correct += (out.argmax(1) == y).sum().item()
            n += len(y)
        if not math.isfinite(loss_sum):
            raise FloatingPointError(f"training diverged (loss {loss_sum}) at step {self.step}")
        rec = {"epoch": len(self.history) + 1, "loss": loss_sum / n, "train_acc": correct / n,
               "seconds": time.perf_counter() - t0}
        self.history.append(rec)
        return rec

    @property
    def seconds_per_epoch(self) -> float:
        # the first epoch pays one-off costs (allocator, oneDNN kernel choice): left out
        times = [r["seconds"] for r in self.history]
        return mean(times[1:] if len(times) > 1 else times)


def train_together(fits: list[Fit], progress=None) -> None:
    """Train every Fit to its epoch count, the fits taking turns epoch by epoch."""
    for e in range(max(f.epochs for f in fits)):
        for f in fits:
            if e < f.epochs:
                rec = f.epoch()
                if progress:
                    progress(f"  epoch {rec['epoch']}/{f.epochs}: loss {rec['loss']:.3f}, "
                             f"train acc {rec['train_acc']:.3f} ({rec['seconds']:.1f} s)")


@torch.no_grad()
def logits(model: nn.Module, data: Data, ds, device, batch_size: int = 500) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x).float().cpu() for x, _ in loader(data, ds, batch_size, device)])


@torch.no_grad()
def reestimate_bn(model: nn.Module, data: Data, device, images: int,
                  after: str | None = None) -> None:
    """Recompute the running statistics of the batch-norm layers (those after the module
    named `after`, or all) on `images` training images, the rest of the model in eval mode
    (cumulative average, no augmentation)."""
    names = [n for n, _ in model.named_modules()]
    start = names.index(after) if after else -1
    bns = [m for n, m in model.named_modules()
           if isinstance(m, nn.BatchNorm2d) and names.index(n) > start]
    model.eval()  # the layers before keep their statistics; only these collect new ones
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative: every batch weighs the same
        m.train()
    seen = 0
    for x, _ in loader(data, data.train, 250, device, shuffle=True, seed=1):
        model(x)
        seen += len(x)
        if seen >= images:
            break
    model.eval()


def accuracy(model: nn.Module, data: Data, ds, device) -> float:
    """Top-1 accuracy in eval mode, no augmentation."""
    pred = logits(model, data, ds, device).argmax(1)
    return (pred == torch.as_tensor(ds.labels)).float().mean().item()


def stat(values: list[float]) -> tuple[float, float]:
    """(mean, spread) over seeds."""
    return mean(values), spread(values)


def pm(values: list[float], scale: float = 100.0, digits: int = 2) -> str:
    """"12.34 +/- 0.56" (percent by default)."""
    m, s = stat(values)
    return f"{m * scale:.{digits}f} \u00b1 {s * scale:.{digits}f}"


def plt():
    """matplotlib.pyplot on the file-only backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot
