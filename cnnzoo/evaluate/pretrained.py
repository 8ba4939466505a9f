"""Classify photos with published ImageNet weights (`cnnzoo predict --pretrained NAME IMAGE`),
each photo prepared exactly as the weights were evaluated: their `pretrained_cfg` says the
shorter side, centre crop, interpolation and mean/std (and TF-ported weights rescale inside
the model), so the default is the right preprocessing, not the caller's guess.
"""

from __future__ import annotations

import os

import torch

from cnnzoo.data.images import Preprocess, read_image
from cnnzoo.evaluate.evaluate import Normalized, predict_proba


def preprocess_of(cfg: dict) -> Preprocess:
    """The image reading a weights' `pretrained_cfg` asks for: shorter side `resize`, then
    the centre `crop` x `crop`, with its interpolation."""
    return Preprocess((cfg["crop"], cfg["crop"]), cfg["input_size"][0], resize="crop",
                      shorter=cfg["resize"], interpolation=cfg["interpolation"])


def pretrained_inputs(paths, cfg: dict) -> torch.Tensor:
    """The files as float [N, C, crop, crop] in 0..1, read as `cfg` says (every file is read,
    and any unreadable one reported, before anything is computed)."""
    prep = preprocess_of(cfg)
    return torch.stack([read_image(path, prep) for path in paths]).float() / 255


def predict_pretrained(
    name: str, paths, *, topk: int = 5, device=None, batch_size: int = 32
) -> list[tuple[str, list[tuple[str, float]]]]:
    """For each image: its top-k (ImageNet class name, probability) under `name`'s published
    weights, most likely first (the same shape as `predict_images`)."""
    from cnnzoo.models.registry import create_model
    from cnnzoo.utils.device import pick_device

    if topk < 1:
        raise ValueError(f"--topk must be >= 1, got {topk}")
    device = pick_device(device) if not isinstance(device, torch.device) else device
    x = pretrained_inputs([os.fspath(p) for p in paths], _cfg_only(name))
    model = create_model(name, pretrained=True).eval().to(device)
    cfg = model.pretrained_cfg
    net = Normalized(model, cfg["mean"], cfg["std"])
    batches = [(x[i:i + batch_size].to(device), torch.zeros(len(x[i:i + batch_size])))
               for i in range(0, len(x), batch_size)]
    probs, _ = predict_proba([net], batches, "none")
    top = probs.topk(min(topk, probs.shape[1]), dim=1)
    return [(str(p), [(cfg["classes"][j], v) for v, j in zip(vals.tolist(), idx.tolist())])
            for p, vals, idx in zip(paths, top.values, top.indices)]


def _cfg_only(name: str) -> dict:
    # The images are read before the (large) weights are fetched: a typo in a path fails fast.
    from cnnzoo.models.weights import pretrained_cfg

    return pretrained_cfg(name)
