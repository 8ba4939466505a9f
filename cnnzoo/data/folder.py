"""A user's photos: `root/<class>/*.jpg|png`, decoded by Pillow in DataLoader workers.

Unreadable images: by default (`on_error="skip"`) the loader drops them from their batch
and warns once per file, naming the path (a training run over thousands of scraped photos
should not die on one bad file); `on_error="raise"` stops with a DataError naming it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from cnnzoo.data.images import ImageReadError, Preprocess, read_image
from cnnzoo.errors import DataError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class ImageFolderDataset(torch.utils.data.Dataset):
    """Images under `root/<class>/`, each read by `cnnzoo.data.images.read_image` at
    `image_size` (by default resized, shorter side, and centre-cropped; `resize`, `shorter`,
    `interpolation` as in `Preprocess`); item i is (uint8 [C,H,W], label, error or "")."""

    def __init__(self, root, image_size=224, channels: int = 3, on_error: str = "skip",
                 samples: list[tuple[str, int]] | None = None, classes: list[str] | None = None,
                 *, resize: str = "crop", shorter: int | None = None,
                 interpolation: str = "bilinear"):
        self.root = Path(root).expanduser()
        self.preprocess = Preprocess(image_size, channels, resize, shorter, interpolation)
        self.image_size, self.channels = self.preprocess.size, channels
        if on_error not in ("skip", "raise"):
            raise DataError(f"on_error must be 'skip' or 'raise', got '{on_error}'")
        self.on_error = on_error
        self.name = self.root.name
        if samples is None:
            classes, samples = self._scan(classes)
        self.classes, self.samples = list(classes), list(samples)
        self.labels = torch.tensor([s[1] for s in self.samples], dtype=torch.int64)

    def _scan(self, known: list[str] | None = None):
        """Class folders, sorted; with `known` (a trained run's classes) labels follow that
        list, and a folder outside it is an error (its images would get someone else's label)."""
        if not self.root.is_dir():
            raise DataError(f"{self.root}: image folder not found")
        found = sorted(d.name for d in self.root.iterdir() if d.is_dir()
                       and not d.name.startswith("."))
        classes = list(known) if known is not None else found
        extra = sorted(set(found) - set(classes))
        if extra:
            raise DataError(f"{self.root}: class folder(s) {', '.join(extra)} are not among "
                            f"the {len(classes)} classes of the run")
        samples = []
        for label, c in enumerate(classes):
            for dirpath, _, files in sorted(os.walk(self.root / c)):
                samples += [(os.path.join(dirpath, f), label) for f in sorted(files)
                            if f.lower().endswith(IMAGE_EXTS)]
        if not samples:
            raise DataError(f"{self.root}: no images found (expected root/<class>/*.jpg|png)")
        return classes, samples

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.channels, *self.image_size)

    def decode(self, path: str) -> torch.Tensor:
        return read_image(path, self.preprocess)

    def __getitem__(self, i):
        path, label = self.samples[i]
        try:
            return self.decode(path), label, ""
        except ImageReadError as e:
            return torch.zeros(self.image_shape, dtype=torch.uint8), label, f"{path}: {e.reason}"

    def subset(self, index, name: str | None = None) -> ImageFolderDataset:
        p = self.preprocess
        d = ImageFolderDataset(self.root, p.size, p.channels, self.on_error,
                               [self.samples[int(i)] for i in index], self.classes,
                               resize=p.resize, shorter=p.shorter, interpolation=p.interpolation)
        d.name = name or self.name
        return d

    def split(self, val_fraction: float, seed: int = 0):
        """(train, val): deterministic and disjoint."""
        perm = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        n_val = round(len(self) * val_fraction)
        return (self.subset(perm[n_val:].sort().values),
                self.subset(perm[:n_val].sort().values, f"{self.name}-val"))

    SAMPLE_CAP = 1000  # each image is a file decode: statistics from a sample, never all

    def sample_images(self, n: int, seed: int = 0) -> torch.Tensor:
        """uint8 [<=n, C, H, W]: up to `n` (at most SAMPLE_CAP) readable images drawn at
        random (seeded)."""
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(self), generator=g)[:min(n, self.SAMPLE_CAP)]
        imgs = [img for img, _, err in (self[int(i)] for i in idx) if not err]
        if not imgs:
            raise DataError(f"{self.root}: none of {len(idx)} images could be read")
        return torch.stack(imgs)

    def channel_stats(self, max_images: int = 500, seed: int = 0):
        """Per-channel mean/std (0..1) from up to `max_images` images (unreadable ones skipped)."""
        x = self.sample_images(max_images, seed).to(torch.float64).div_(255)
        x = x.transpose(0, 1).flatten(1)
        return x.mean(1).tolist(), x.std(1, correction=0).tolist()


def collate(items):
    x = torch.stack([it[0] for it in items])
    y = torch.tensor([it[1] for it in items], dtype=torch.int64)
    return x, y, [it[2] for it in items]
