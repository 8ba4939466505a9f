"""Conv filters as an image: the lectures' first-layer check ("Monitoring Learning Process", 5).

Smooth, structured first-layer filters mean training is going well; noisy ones point to an
unconverged net, a bad learning rate or too little regularisation. The grid is Pillow only
(no matplotlib) so the trainer can afford one per epoch; `plot_filters` (matplotlib, for
`cnnzoo viz filters`) sets a run's kernels of any conv layer beside the trainer's per-epoch
grids of the first one.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from cnnzoo.errors import ShapeError
from cnnzoo.models.backbone import get_layer
from cnnzoo.utils.io import atomic_path

_BG = 128  # grey gaps between tiles, neutral against the min-max scaled filters
_MIN_TILE_PX = 32  # upscale tiny kernels (3x3, 5x5) so they are visible


def filter_grid_image(
    weight: torch.Tensor, *, title: str | None = None, max_filters: int = 64, max_in: int = 8
) -> Image.Image:
    """A grid image of conv weights [O, I, kh, kw], each tile min-max scaled on its own.

    I == 3: one RGB tile per filter. Otherwise one grey tile per (filter, input channel),
    a row per filter when I > 1. At most `max_filters` filters and `max_in` input channels.
    """
    if weight.ndim != 4:
        raise ShapeError(f"filter grid needs a conv weight [O, I, kh, kw], got shape "
                         f"{list(weight.shape)}")
    w = weight.detach().float().cpu()[:max_filters]
    o, i, kh, kw = w.shape
    if i == 3:
        tiles = w.unsqueeze(1)  # [O, 1, 3, kh, kw]: one RGB tile per filter
        cols = math.ceil(math.sqrt(o))
    else:
        tiles = w[:, :max_in].reshape(-1, 1, 1, kh, kw)  # one grey tile per (o, i)
        cols = min(i, max_in) if i > 1 else math.ceil(math.sqrt(o))
    tiles = tiles.flatten(0, 1)  # [N, C, kh, kw]
    lo = tiles.amin(dim=(1, 2, 3), keepdim=True)
    hi = tiles.amax(dim=(1, 2, 3), keepdim=True)
    tiles = ((tiles - lo) / (hi - lo).clamp_min(1e-12) * 255).round().to(torch.uint8)

    n = tiles.shape[0]
    rows = math.ceil(n / cols)
    scale = max(1, math.ceil(_MIN_TILE_PX / max(kh, kw)))
    th, tw, gap = kh * scale, kw * scale, 2
    top = 16 if title else 0
    mode = "RGB" if tiles.shape[1] == 3 else "L"
    bg = (_BG,) * 3 if mode == "RGB" else _BG
    width = max(cols * (tw + gap) + gap, 6 * len(title or "") + 4)  # room for the title
    canvas = Image.new(mode, (width, top + rows * (th + gap) + gap), bg)
    for k in range(n):
        t = tiles[k].permute(1, 2, 0).numpy()
        tile = Image.fromarray(t[..., 0] if mode == "L" else t, mode)
        tile = tile.resize((tw, th), Image.NEAREST)
        r, c = divmod(k, cols)
        canvas.paste(tile, (gap + c * (tw + gap), top + gap + r * (th + gap)))
    if title:
        ImageDraw.Draw(canvas).text((gap, 2), title, fill=(255,) * 3 if mode == "RGB" else 255)
    return canvas


def save_filter_grid(
    weight: torch.Tensor, path: str | os.PathLike, *, title: str | None = None
) -> None:
    """Write `filter_grid_image(weight)` as a PNG atomically (the trainer calls it per epoch)."""
    img = filter_grid_image(weight, title=title)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


def first_conv_weight(model: torch.nn.Module) -> torch.Tensor:
    """The weight of the model's first Conv2d (in registration order: the stem)."""
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            return m.weight
    raise ShapeError(f"{type(model).__name__} has no Conv2d layer to draw")


def conv_layers(model: torch.nn.Module) -> list[str]:
    """Names of the layers with conv kernels (a 4-D weight), in registration order."""
    return [n for n, m in model.named_modules()
            if n and torch.is_tensor(getattr(m, "weight", None)) and m.weight.ndim == 4]


def conv_weight(model: torch.nn.Module, layer: str | None = None) -> tuple[str, torch.Tensor]:
    """(name, weight [O, I, kh, kw]) of conv layer `layer`, by default the first one."""
    convs = conv_layers(model)
    if layer is None:
        if not convs:
            raise ShapeError(f"{type(model).__name__} has no conv layer to draw")
        layer = convs[0]
    m = get_layer(model, layer)
    if layer not in convs:
        listed = ", ".join(convs[:12]) + (", ..." if len(convs) > 12 else "")
        raise ShapeError(f"layer {layer} ({type(m).__name__}) has no conv kernels; conv "
                         f"layers: {listed or 'none'}")
    return layer, m.weight.detach()


@dataclass
class RunFilters:
    """A run's kernels of one conv layer, and the trainer's per-epoch grids when the layer
    is the first conv (the one the trainer draws each epoch)."""

    model: str
    layer: str
    which: str  # the run's "best" or "last" weights
    weight: torch.Tensor  # [O, I, kh, kw]
    epochs: list[tuple[int, Path]] = field(default_factory=list)  # RUN/filters/epoch_NNN.png


def run_filters(run_dir: str | os.PathLike, layer: str | None = None, which: str = "best"
                ) -> RunFilters:
    """The kernels of `layer` (default: the first conv) in a run folder, with its saved
    per-epoch grids (first conv only)."""
    from cnnzoo.viz.common import load_run

    model, config = load_run(run_dir, which=which)
    name, w = conv_weight(model, layer)
    epochs = []
    if name == conv_layers(model)[0]:
        for png in sorted(Path(run_dir, "filters").glob("epoch_*.png")):
            m = re.fullmatch(r"epoch_(\d+)\.png", png.name)
            if m:
                epochs.append((int(m.group(1)), png))
    return RunFilters(config.get("model", type(model).__name__), name, which, w.cpu(),
                      sorted(epochs))


def _spread(items: list, n: int) -> list:
    """At most n items, evenly spaced, first and last kept."""
    if len(items) <= n:
        return items
    return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)]


def _show(ax, img: Image.Image, title: str) -> None:
    a = np.asarray(img)
    ax.imshow(a, cmap="gray" if a.ndim == 2 else None, vmin=0, vmax=255,
              interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def _label_tiles(ax, weight: torch.Tensor, grid: Image.Image, max_filters=64, max_in=8):
    """Lines between the tiles and their numbers: each filter's number on its tile (a tile
    per filter), or filters down the side and input channels along the top (a row per
    filter)."""
    o, i, kh, kw = weight.shape
    o = min(o, max_filters)
    per_filter = i in (1, 3)  # filter_grid_image's layouts
    cols = math.ceil(math.sqrt(o)) if per_filter else min(i, max_in)
    rows = math.ceil(o / cols) if per_filter else o
    th, tw = (grid.height - 2) / rows, (grid.width - 2) / cols  # tile pitch, after a 2 px gap
    for r in range(1, rows):
        ax.axhline(r * th + 0.5, color="tab:blue", lw=0.6)
    for c in range(1, cols):
        ax.axvline(c * tw + 0.5, color="tab:blue", lw=0.6)
    if per_filter:
        from matplotlib.patheffects import withStroke

        outline = [withStroke(linewidth=2, foreground="black")]  # legible on any tile
        for k in range(o):
            r, c = divmod(k, cols)
            ax.text(2 + c * tw + 1, 2 + r * th + 1, str(k), color="yellow", fontsize=7,
                    va="top", ha="left", path_effects=outline)
        return
    every = max(1, math.ceil(rows / 16))
    ax.set_yticks([1 + th * (r + 0.5) for r in range(0, rows, every)],
                  [str(r) for r in range(0, rows, every)], fontsize=7)
    ax.set_ylabel("filter", fontsize=8)
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    ax.set_xticks([1 + tw * (c + 0.5) for c in range(cols)], [str(c) for c in range(cols)],
                  fontsize=7)
    ax.set_xlabel("input channel", fontsize=8)


def plot_filters(f: RunFilters, out_png: str | os.PathLike, *, max_epochs: int = 6) -> Path:
    """The layer's kernels as a grid (one colour tile per filter for RGB input, else one
    grey tile per filter and input channel, each min-max scaled), and below it the
    trainer's grids across epochs, when there are any. Written atomically as a PNG."""
    from matplotlib.figure import Figure

    o, i, kh, kw = f.weight.shape
    shown = [f"{min(o, 64)} of {o} filters" if o > 64 else f"{o} filters",
             f"{min(i, 8)} of {i} input channels" if i > 8 and i != 3 else
             ("RGB" if i == 3 else f"{i} input channel{'s' * (i > 1)}")]
    title = f"{f.model} {f.layer}: {kh}x{kw} kernels, {', '.join(shown)} ({f.which} weights)"
    epochs = _spread(f.epochs, max_epochs)
    grid = filter_grid_image(f.weight)
    zoom = min(max(1.0, min(640 / grid.width, 520 / grid.height)), 4.0)  # 100 px per inch
    grid_w, grid_h = grid.width * zoom / 100 + 1.2, grid.height * zoom / 100 + 1.0
    width = max(grid_w, 6.0, 2.0 * len(epochs))
    fig = Figure(figsize=(width, grid_h + (2.6 if epochs else 0.4)), layout="constrained")
    cols = max(1, len(epochs))
    gs = fig.add_gridspec(2 if epochs else 1, cols,
                          height_ratios=[grid_h, 2.2] if epochs else None)
    ax = fig.add_subplot(gs[0, :])
    _show(ax, grid, "each tile min-max scaled on its own")
    _label_tiles(ax, f.weight, grid)
    for k, (epoch, png) in enumerate(epochs):
        with Image.open(png) as im:
            _show(fig.add_subplot(gs[1, k]), im.convert(grid.mode), f"epoch {epoch}")
    fig.suptitle(title + ("\nbelow: the first layer during training (RUN/filters)"
                          if epochs else ""), fontsize=10)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(out_png)
