"""Evaluate a trained run on the test split: top-1/top-5, per-class accuracy, confusion matrix.

The test split is touched only here (model selection used the validation split). Images are
normalised with the mean/std stored in the run's config.json, never recomputed.

Test-time augmentation averages softmax probabilities over views (AlexNet's 10-crop,
Krizhevsky et al. 2012, sec. 4.1: "averaging the predictions ... on the ten patches"):
- flip: the image and its mirror;
- 10crop: 4 corners + centre and their mirrors. Our datasets are already at the model's
  input size (28 or 32 px), so `tta_views` first pads the 0..1 image with black by H//8 px
  per side and takes the crops back at the input size: the same windows as the training
  augmentation `crop:H//8` (28 -> 34 -> 28, 32 -> 40 -> 32).
TTA only helps a model trained with the matching augmentation: a LeNet-5 trained briefly on
Fashion-MNIST without any scored 81.5% / 74.5% / 59.5% top-1 with none / flip / 10crop
(shoes there all point one way).

`predict_proba(models, loader, tta)` takes a list of models so that an ensemble is the
same call with more runs (each `Normalized` with its own stats).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnzoo.evaluate.metrics import confusion_matrix, per_class_accuracy, topk_accuracy
from cnnzoo.models.layers import main_logits
from cnnzoo.runs import check_dataset, test_set  # noqa: F401  (the run's test split)
from cnnzoo.utils.io import atomic_write_json

TTA_MODES = ("none", "flip", "10crop")


class Normalized(nn.Module):
    """A model that takes 0..1 images and applies its run's own mean/std first."""

    def __init__(self, model: nn.Module, mean, std):
        super().__init__()
        self.model = model
        c = len(mean)
        p = next(model.parameters(), None)
        dev = p.device if p is not None else None
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32, device=dev)
                             .view(1, c, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32, device=dev)
                             .view(1, c, 1, 1))

    def forward(self, x: torch.Tensor):
        return self.model((x - self.mean) / self.std)


def view_count(tta: str) -> int:
    """The number of views `tta` makes of each image."""
    from cnnzoo.data.augment import TTA_VIEWS

    if tta not in TTA_MODES:
        raise ValueError(f"--tta must be one of {', '.join(TTA_MODES)}, got {tta!r}")
    return TTA_VIEWS[tta]


def make_views(x: torch.Tensor, tta: str, views=None) -> tuple[torch.Tensor, int]:
    """Views-major TTA batch [V*B, C, H, W] of 0..1 images, and V (crops keep x's size);
    `views`: only those view indices (see `tta_views`)."""
    from cnnzoo.data import tta_views

    if tta not in TTA_MODES:
        raise ValueError(f"--tta must be one of {', '.join(TTA_MODES)}, got {tta!r}")
    return tta_views(x, tta, views=views)  # 10crop: pads by H//8, crops back to H x W


@torch.no_grad()
def predict_proba(models, loader, tta: str = "none") -> tuple[torch.Tensor, torch.Tensor]:
    """Mean softmax over models and TTA views for every batch of `loader`.

    `models`: one module or a list taking 0..1 images (wrap with `Normalized`); `loader`:
    iterable of (x float 0..1 [B,C,H,W], y). Returns (probs [N, K], y [N]) on the CPU.
    """
    models = [models] if isinstance(models, nn.Module) else list(models)
    probs, labels = [], []
    v = view_count(tta)
    for x, y in loader:
        p = 0.0
        for m in models:
            for i in range(v):  # one view at a time: TTA costs time, not memory
                p = p + F.softmax(main_logits(m(make_views(x, tta, [i])[0])).float(), dim=1)
        probs.append((p / (v * len(models))).cpu())
        labels.append(torch.as_tensor(y).cpu())
    return torch.cat(probs), torch.cat(labels)


def evaluate_run(
    run_dir: str | os.PathLike,
    *,
    dataset=None,
    data_dir: str | None = None,
    tta: str = "none",
    which: str = "best",
    batch_size: int = 256,
    device=None,
) -> dict:
    """Evaluate `run_dir` on a test split; write RUN/eval/<dataset>_<tta>_<which>.json + PNG.

    `dataset`: a name (default: the run's own dataset, test split) or an ArrayDataset.
    Returns the JSON summary (with the output paths under "files").
    """
    from cnnzoo.data import build_loader
    from cnnzoo.runs import EVAL, load_run
    from cnnzoo.utils.device import pick_device
    from cnnzoo.viz.plots import plot_confusion

    if tta not in TTA_MODES:
        raise ValueError(f"--tta must be one of {', '.join(TTA_MODES)}, got {tta!r}")
    run_dir = Path(run_dir)
    device = pick_device(device) if not isinstance(device, torch.device) else device
    model, config = load_run(run_dir, which=which, device=device)
    if dataset is None or isinstance(dataset, str):
        dataset = test_set(config, dataset, data_dir)
    check_dataset(dataset, config, run_dir)

    c = config["input_size"][0]
    loader = build_loader(dataset, batch_size, shuffle=False, mean=[0.0] * c, std=[1.0] * c,
                          device=device)  # 0..1 images: each model normalises its own way
    t0 = time.perf_counter()
    probs, labels = predict_proba([Normalized(model, config["mean"], config["std"])],
                                  loader, tta)
    seconds = time.perf_counter() - t0

    k = config["num_classes"]
    classes = list(config.get("classes") or dataset.classes)
    acc = topk_accuracy(probs, labels, ks=(1, 5))
    cm = confusion_matrix(probs.argmax(1), labels, k)
    per_class = per_class_accuracy(cm)
    stem = f"{dataset.name}_{tta}_{which}"
    out_json = run_dir / EVAL / f"{stem}.json"
    out_png = run_dir / EVAL / f"{stem}_confusion.png"
    summary = {
        "run": str(run_dir),
        "model": config.get("model"),
        "which": which,
        "dataset": dataset.name,
        "split": "test",
        "n": int(labels.numel()),
        "tta": tta,
        "views": int(make_views(torch.zeros(1, *config["input_size"]), tta)[1]),
        "top1": acc[1],
        "top5": acc.get(5),  # None below 5 classes
        "per_class": {
            name: (None if torch.isnan(a) else a.item()) for name, a in zip(classes, per_class)
        },
        "classes": classes,
        "confusion": cm.tolist(),
        "seconds": round(seconds, 3),
        "files": {"json": str(out_json), "confusion_png": str(out_png)},
    }
    plot_confusion(cm, classes, out_png, title=f"{config.get('model')} on {dataset.name} test "
                   f"(tta {tta}): top-1 {100 * acc[1]:.2f}%")
    atomic_write_json(out_json, summary)
    return summary
