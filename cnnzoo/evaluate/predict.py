"""Classify a user's image files with a trained run: top-k classes with probabilities."""

from __future__ import annotations

import os

import torch

from cnnzoo.data.images import Preprocess, read_image
from cnnzoo.evaluate.evaluate import Normalized, predict_proba


def load_image(path: str | os.PathLike, in_chans: int, size_hw, **preprocess) -> torch.Tensor:
    """A file as float [C, H, W] in 0..1, read by `cnnzoo.data.images.read_image` (EXIF
    orientation, channels, resize; by default shorter side to the input size, then the
    centre crop: the usual single-crop evaluation), as the folder dataset reads it."""
    return read_image(path, Preprocess(size_hw, in_chans, **preprocess)).float() / 255


def predict_images(
    run_dir: str | os.PathLike, paths, *, topk: int = 5, which: str = "best", device=None
) -> list[tuple[str, list[tuple[str, float]]]]:
    """For each image: its top-k (class name, probability), most likely first."""
    from cnnzoo.runs import load_run, read_run_image
    from cnnzoo.utils.device import pick_device

    if topk < 1:
        raise ValueError(f"--topk must be >= 1, got {topk}")
    device = pick_device(device) if not isinstance(device, torch.device) else device
    model, config = load_run(run_dir, which=which, device=device)
    x = torch.stack([read_run_image(p, config) for p in paths])  # all read before compute
    classes = config.get("classes") or [str(i) for i in range(config["num_classes"])]
    net = Normalized(model, config["mean"], config["std"])
    batches = [(x[i:i + 64].to(device), torch.zeros(len(x[i:i + 64]))) for i in
               range(0, len(x), 64)]
    probs, _ = predict_proba([net], batches, "none")
    top = probs.topk(min(topk, probs.shape[1]), dim=1)
    return [
        (str(p), [(classes[j], v) for v, j in zip(vals.tolist(), idx.tolist())])
        for p, vals, idx in zip(paths, top.values, top.indices)
    ]
