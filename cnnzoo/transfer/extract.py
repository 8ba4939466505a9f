"""Off-the-shelf features: a frozen network's vectors at a named layer for every image of a
dataset, through the feature cache (cache.py), so the network runs once per (weights, layer,
dataset, preprocessing).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch
import torch.nn as nn

from cnnzoo.transfer.body import PRE_LOGITS, VectorOf
from cnnzoo.transfer.cache import FeatureSet, cached_features, dataset_fingerprint


def default_cache_dir() -> Path:
    from cnnzoo.data.sources import cache_dir

    return cache_dir() / "features"


def extract(model: nn.Module, ds, *, source_sha256: str, split: str, mean, std,
            layer: str = PRE_LOGITS, pool: str = "avg", cache_dir=None, chunk: int = 8192,
            batch_size: int = 256, device="cpu", preprocess: dict | None = None
            ) -> tuple[FeatureSet, bool]:
    """(`ds`'s vectors at `layer` of `model`, read from the cache or not). `model` holds the
    weights hashed as `source_sha256` (channel adaptation included in `preprocess`); images
    are normalised with `mean`/`std`. The network is built and checked before the cache is
    looked at, so a bad layer name fails the same way either way."""
    from cnnzoo.data import build_loader

    vec = VectorOf(model, layer, pool)
    prep = dict(preprocess or {})
    if hasattr(ds, "preprocess"):  # an image folder: how its files are read
        prep["read"] = {k: list(v) if isinstance(v, tuple) else v
                        for k, v in dataclasses.asdict(ds.preprocess).items()}
    parts = {
        "source": source_sha256, "layer": layer, "pool": pool,
        "dataset": {"name": ds.name, "split": split, "n": len(ds),
                    "image_shape": list(ds.image_shape), "classes": list(ds.classes),
                    "content": dataset_fingerprint(ds)},
        "preprocess": {"mean": [float(v) for v in mean], "std": [float(v) for v in std],
                       **prep},
    }

    def compute():
        device_ = torch.device(device)
        model.to(device_).eval()
        loader = build_loader(ds, batch_size, shuffle=False, mean=mean, std=std,
                              device=device_, prefetch=False)
        with torch.inference_mode():
            for x, y in loader:
                yield vec(x), y

    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return cached_features(os.fspath(root), parts, list(ds.classes), compute, chunk=chunk)
