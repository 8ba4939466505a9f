"""Classify a user's image files with a trained run: top-k classes with probabilities."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from cnnzoo.errors import DataError, ShapeError
from cnnzoo.evaluate.evaluate import Normalized, predict_proba

_MODES = {1: "L", 3: "RGB"}


def load_image(path: str | os.PathLike, in_chans: int, size_hw) -> torch.Tensor:
    """A file as float [C, H, W] in 0..1: converted to the run's channels, resized, centre-cropped.

    Resizing keeps the aspect ratio (shorter side to the input size, then the centre crop),
    the usual single-crop evaluation.
    """
    if in_chans not in _MODES:
        raise ShapeError(f"predict supports runs with 1 or 3 input channels, not {in_chans}")
    path = Path(path)
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im).convert(_MODES[in_chans])
            im = ImageOps.fit(im, (size_hw[1], size_hw[0]), method=Image.BILINEAR)
    except FileNotFoundError:
        raise DataError(f"{path}: no such image file") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        # Pillow raises UnidentifiedImageError (an OSError) or truncation errors here
        raise DataError(f"{path}: cannot read image ({e})") from None
    arr = np.asarray(im, dtype=np.uint8).reshape(size_hw[0], size_hw[1], in_chans)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255


def predict_images(
    run_dir: str | os.PathLike, paths, *, topk: int = 5, which: str = "best", device=None
) -> list[tuple[str, list[tuple[str, float]]]]:
    """For each image: its top-k (class name, probability), most likely first."""
    from cnnzoo.train.checkpoint import load_run
    from cnnzoo.utils.device import pick_device

    if topk < 1:
        raise ValueError(f"--topk must be >= 1, got {topk}")
    device = pick_device(device) if not isinstance(device, torch.device) else device
    model, config = load_run(run_dir, which=which, device=device)
    c, h, w = config["input_size"]
    x = torch.stack([load_image(p, c, (h, w)) for p in paths])  # every file read before compute
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
