"""A layer's feature maps for one image (lectures, "Monitoring the learning process", 5:
"visualization of each layer's feature map")."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from cnnzoo.models.backbone import features
from cnnzoo.utils.io import atomic_path


@dataclass
class Activations:
    layer: str
    maps: torch.Tensor  # [C, H, W] (or [F] for a layer without a spatial map)
    image: torch.Tensor  # the input, float [C, H, W] in 0..1, for the picture
    model: str = ""


@torch.no_grad()
def layer_activations(model: nn.Module, x: torch.Tensor, layer: str,
                      image: torch.Tensor | None = None) -> Activations:
    """Output of `layer` for one normalised image x [C, H, W] (the model in eval mode).
    `image`: the same picture in 0..1 for the figure (default: x rescaled)."""
    was = model.training
    model.eval()
    try:
        out = features(model, [layer], detach=True)(x.unsqueeze(0))[layer]
    finally:
        model.train(was)
    if image is None:
        image = (x - x.min()) / (x.max() - x.min()).clamp_min(1e-12)
    return Activations(layer, out[0].float().cpu(), image.cpu())


def _image_array(img: torch.Tensor) -> np.ndarray:
    a = img.clamp(0, 1).permute(1, 2, 0).numpy()
    return a[..., 0] if a.shape[2] == 1 else a


def plot_activations(a: Activations, out_png: str | os.PathLike, *, title: str = "",
                     max_maps: int = 64) -> Path:
    """The input and the layer's maps, each map on its own colour scale (its min and max
    under it), or a bar per unit for a layer without a spatial map. Atomic PNG."""
    from matplotlib.figure import Figure

    maps = a.maps
    spatial = maps.ndim == 3
    if spatial:
        n = min(maps.shape[0], max_maps)
        cols = math.ceil(math.sqrt(n * 1.5))
        rows = math.ceil(n / cols)
        fig = Figure(figsize=(1.5 * cols + 2.6, 1.5 * rows + 0.9), layout="constrained")
        gs = fig.add_gridspec(rows, cols + 2)
        ax = fig.add_subplot(gs[: min(rows, 2), :2])
        ax.imshow(_image_array(a.image), cmap="gray", vmin=0, vmax=1)
        ax.set_title("input", fontsize=9)
        ax.set_axis_off()
        for k in range(n):
            r, c = divmod(k, cols)
            ax = fig.add_subplot(gs[r, c + 2])
            m = maps[k].numpy()
            ax.imshow(m, cmap="viridis", interpolation="nearest")
            ax.set_title(f"ch {k}", fontsize=7, pad=2)
            ax.set_xlabel(f"{m.min():.2g}..{m.max():.2g}", fontsize=6, labelpad=1)
            ax.set_xticks([])
            ax.set_yticks([])
        shape = "x".join(map(str, maps.shape))
        what = f"{a.layer}: {shape} (channels x H x W)" + (
            f", first {n} maps" if n < maps.shape[0] else "") + (
            "; colour: each map's own min..max")
    else:
        flat = maps.flatten().numpy()
        fig = Figure(figsize=(10, 3.2), layout="constrained")
        ax_img, ax = fig.subplots(1, 2, width_ratios=[1, 5])
        ax_img.imshow(_image_array(a.image), cmap="gray", vmin=0, vmax=1)
        ax_img.set_axis_off()
        ax.bar(np.arange(flat.size), flat, width=1.0, color="C0")
        ax.set_xlabel("unit")
        ax.set_ylabel("activation")
        what = f"{a.layer}: {flat.size} units (no spatial map)"
    fig.suptitle(f"{title + ' ' if title else ''}{what}", fontsize=10)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(out_png)


def run_activations(run_dir: str | os.PathLike, image_path: str | os.PathLike, layer: str, *,
                    which: str = "best") -> Activations:
    """`layer_activations` of a run's model for one image file (read as `cnnzoo predict`
    reads it, normalised with the run's mean / std)."""
    from cnnzoo.models.backbone import get_layer
    from cnnzoo.viz.common import load_run, normalise, read_run_image

    model, config = load_run(run_dir, which=which)
    get_layer(model, layer)
    img = read_run_image(image_path, config)
    a = layer_activations(model, normalise(img, config), layer, image=img)
    a.model = config["model"]
    return a
