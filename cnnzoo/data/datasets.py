"""In-memory datasets: uint8 image tensors [N,C,H,W] + int64 labels, and `load_dataset`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cnnzoo.data import cifar, sources
from cnnzoo.data.folder import ImageFolderDataset
from cnnzoo.data.idx import load_idx_pair
from cnnzoo.errors import DataError

MNIST_CLASSES = [str(i) for i in range(10)]
FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
DATASETS = ("mnist", "fashion-mnist", "cifar10", "cifar100", "synthetic", "folder")
_IDX_PREFIX = {"train": "train", "test": "t10k"}


@dataclass
class ArrayDataset:
    """A whole dataset in memory: images uint8 [N,C,H,W], labels int64 [N]."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    name: str

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise DataError(f"{self.name}: images must be uint8 [N,C,H,W], got "
                            f"{self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.shape != (len(self.images),):
            raise DataError(f"{self.name}: {tuple(self.labels.shape)} labels for "
                            f"{len(self.images)} images")
        self.labels = self.labels.long()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], self.labels[i]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def subset(self, index: torch.Tensor, name: str | None = None) -> ArrayDataset:
        return ArrayDataset(self.images[index], self.labels[index], self.classes,
                            name or self.name)

    def split(self, val_fraction: float, seed: int = 0, stratify: bool = False):
        """(train, val): a deterministic, disjoint split; `stratify` keeps class proportions."""
        if not 0.0 <= val_fraction < 1.0:
            raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")
        g = torch.Generator().manual_seed(seed)
        if stratify:
            val = []
            for c in range(self.num_classes):
                idx = (self.labels == c).nonzero().flatten()
                idx = idx[torch.randperm(len(idx), generator=g)]
                val.append(idx[: round(len(idx) * val_fraction)])
            val_idx = torch.cat(val).sort().values
            mask = torch.ones(len(self), dtype=torch.bool)
            mask[val_idx] = False
            train_idx = mask.nonzero().flatten()
        else:
            perm = torch.randperm(len(self), generator=g)
            n_val = round(len(self) * val_fraction)
            val_idx, train_idx = perm[:n_val].sort().values, perm[n_val:].sort().values
        return (self.subset(train_idx, f"{self.name}"), self.subset(val_idx, f"{self.name}-val"))

    def sample_images(self, n: int, seed: int = 0) -> torch.Tensor:
        """uint8 [<=n, C, H, W]: all images if there are at most `n`, else `n` drawn at
        random (seeded); ImageFolderDataset has the same method, decoding its sample."""
        if len(self) <= n:
            return self.images
        g = torch.Generator().manual_seed(seed)
        return self.images[torch.randperm(len(self), generator=g)[:n]]

    def channel_stats(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std on the 0..1 scale (the lectures' mean subtraction and
        normalisation), from the sums of x and x^2 over chunks (float64 across chunks)."""
        c = self.images.shape[1]
        s = torch.zeros(c, dtype=torch.float64)
        s2 = torch.zeros(c, dtype=torch.float64)
        for chunk in self.images.split(4096):
            x = chunk.transpose(0, 1).reshape(c, -1).float()
            s += x.sum(1, dtype=torch.float64)
            s2 += (x * x).sum(1, dtype=torch.float64)
        n = self.images.numel() // c
        mean = s / n / 255
        std = (s2 / n / 255**2 - mean * mean).clamp_min(0).sqrt()
        return mean.tolist(), std.tolist()


def _synthetic(split: str, num_samples: int | None = None, channels: int = 3, size: int = 32,
               num_classes: int = 10, seed: int = 0) -> ArrayDataset:
    """Learnable fake images: one smooth random template per class plus per-image noise."""
    n = num_samples or (2048 if split == "train" else 512)
    g = torch.Generator().manual_seed(seed)  # templates shared by both splits
    templates = torch.rand(num_classes, channels, 4, 4, generator=g)
    templates = torch.nn.functional.interpolate(templates, size=(size, size), mode="bicubic",
                                                align_corners=False)
    g.manual_seed(seed + (1 if split == "train" else 2))
    labels = torch.randint(num_classes, (n,), generator=g)
    x = templates[labels] + 0.15 * torch.randn(n, channels, size, size, generator=g)
    images = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    return ArrayDataset(images, labels, [f"class{i}" for i in range(num_classes)], "synthetic")


def folder_split_root(data_dir, split: str) -> Path:
    """Where a split of a `folder` dataset lives: `data_dir/train` and `data_dir/test` (or
    `val`) when `data_dir` has a train/ folder; otherwise `data_dir` itself, for either split
    (a flat folder of training photos, or one of test photos given to `cnnzoo eval`)."""
    if data_dir is None:
        raise DataError("--dataset folder needs --data-dir PATH (PATH/<class>/*.jpg, or "
                        "PATH/train/<class>/ and PATH/test/<class>/)")
    root = Path(data_dir).expanduser()
    if not (root / "train").is_dir():
        return root
    if split == "train":
        return root / "train"
    for sub in ("test", "val"):
        if (root / sub).is_dir():
            return root / sub
    raise DataError(f"{root}: has a train/ folder but no test/ or val/ folder for the test split")


def folder_has_test_split(data_dir) -> bool:
    root = Path(data_dir).expanduser()
    return (root / "train").is_dir() and any((root / s).is_dir() for s in ("test", "val"))


def load_dataset(name: str, split: str = "train", data_dir=None, download: bool = True,
                 **kwargs) -> ArrayDataset | ImageFolderDataset:
    """Load a dataset split into memory, finding (or downloading) its files first.

    `synthetic` takes `num_samples`, `channels`, `size`, `num_classes`, `seed`.
    `folder` (a user's photos under `data_dir`, see `folder_split_root`) takes `image_size`,
    `channels`, `on_error` and `classes` (a trained run's, so labels keep their meaning) and
    returns an ImageFolderDataset, decoded batch by batch rather than held in memory.
    """
    name = name.lower().replace("_", "-")
    name = {"fashion": "fashion-mnist", "fmnist": "fashion-mnist", "cifar-10": "cifar10",
            "cifar-100": "cifar100"}.get(name, name)
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', got '{split}'")
    if name == "synthetic":
        return _synthetic(split, **kwargs)
    if name == "folder":
        return ImageFolderDataset(folder_split_root(data_dir, split), **kwargs)
    if name not in DATASETS:
        raise DataError(f"unknown dataset '{name}' (known: {', '.join(DATASETS)}; "
                        "for your own photos: --dataset folder --data-dir PATH)")
    root = sources.resolve(name, data_dir, download_ok=download)
    if name in ("mnist", "fashion-mnist"):
        p = _IDX_PREFIX[split]
        x, y = load_idx_pair(root / f"{p}-images-idx3-ubyte.gz",
                             root / f"{p}-labels-idx1-ubyte.gz", 10)
        classes = MNIST_CLASSES if name == "mnist" else FASHION_CLASSES
    else:
        x, y, classes = cifar.load_from_root(root, name, split)
    return ArrayDataset(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y),
                        list(classes), name)
