"""Conv filters as an image: the lectures' first-layer check ("Monitoring Learning Process", 5).

Smooth, structured first-layer filters mean training is going well; noisy ones point to an
unconverged net, a bad learning rate or too little regularisation. Pillow only (no
matplotlib figure) so the trainer can afford one grid per epoch.
"""

from __future__ import annotations

import math
import os

import torch
from PIL import Image, ImageDraw

from cnnzoo.errors import ShapeError
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
