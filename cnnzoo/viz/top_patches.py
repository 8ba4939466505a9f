"""The images that excite one channel most (lecture seed 002, "Visualising ConvNets": the top-9
activations of a feature map, after Zeiler & Fergus 2014), each cropped to the receptive
field of the unit where the channel peaks.

One streaming pass over the data: per image, the channel's largest activation and where it
is; a min-heap keeps the k best images, so memory does not grow with the dataset. The crop
window comes from the model's own layers (cnnzoo.analysis.layer_field: receptive field,
jump and start offset), not from a guess at the layer's stride.
"""

from __future__ import annotations

import heapq
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from cnnzoo.analysis import LayerField, layer_field
from cnnzoo.errors import ShapeError
from cnnzoo.models.backbone import features
from cnnzoo.utils.io import atomic_path
from cnnzoo.viz.common import check_index, load_run, normalise


@dataclass
class Patch:
    index: int  # position of the image in the data stream (the dataset's order)
    label: int
    value: float  # the channel's largest activation in this image
    position: tuple[int, int]  # (row, column) of that maximum in the layer's map
    window: tuple[int, int, int, int]  # (top, left, bottom, right) in the image, exclusive
    crop: torch.Tensor  # float [C, h, w] in 0..1: image[:, top:bottom, left:right]
    image: torch.Tensor  # the whole image, float [C, H, W] in 0..1


@dataclass
class TopPatches:
    layer: str
    channel: int
    field: LayerField
    patches: list[Patch]  # largest activation first
    seen: int  # images scanned
    classes: list[str] | None = None


def _field(model: nn.Module, layer: str, channel: int, input_size) -> LayerField:
    field = layer_field(model, layer, input_size)  # UnknownLayerError lists valid names
    if not field.spatial:
        raise ShapeError(f"layer {layer} outputs {list(field.shape)}, not feature maps: "
                         "top patches need a conv or pooling layer")
    check_index(channel, field.shape[0], "channel", f"layer {layer}", "channels")
    return field


@torch.no_grad()
def top_patches(model: nn.Module, batches, layer: str, channel: int, *, mean, std,
                k: int = 9, classes: list[str] | None = None) -> TopPatches:
    """The k images of `batches` ((x float [B, C, H, W] in 0..1, labels) pairs, in a fixed
    order) whose `channel` of `layer` reaches the largest activation, largest first. Ties
    go to the earlier image; each image appears once."""
    model.eval()
    extract = features(model, [layer], detach=True)
    field = None
    norm = {"mean": list(mean), "std": list(std)}
    heap: list[tuple[float, int, Patch]] = []  # (value, -index, patch): the root is the worst
    seen = 0
    for x, y in batches:
        if field is None:  # the layer's shape and receptive field, once, on meta tensors
            field = _field(model, layer, channel, tuple(x.shape[1:]))
        maps = extract(normalise(x, norm))[layer][:, channel].flatten(1).float()
        vals, where = maps.max(1)  # first maximum of each image
        order = torch.sort(vals, descending=True, stable=True).indices[:k].tolist()
        for b in order:
            key = (float(vals[b]), -(seen + b))
            if len(heap) == k and key <= heap[0][:2]:
                break  # sorted: no later image of this batch gets in either
            pos = divmod(int(where[b]), field.shape[2])
            top, left, bottom, right = field.window(pos)
            img = x[b].float().cpu()
            patch = Patch(seen + b, int(y[b]), key[0], pos, (top, left, bottom, right),
                          img[:, top:bottom, left:right].clone(), img.clone())
            item = (*key, patch)
            if len(heap) < k:
                heapq.heappush(heap, item)
            else:
                heapq.heapreplace(heap, item)
        seen += len(vals)
    if field is None:
        raise ValueError("top_patches: no images")
    best = [p for *_, p in sorted(heap, key=lambda t: t[:2], reverse=True)]
    return TopPatches(layer, channel, field, best, seen, classes)


def run_top_patches(run_dir: str | os.PathLike, layer: str, channel: int, *,
                    dataset: str | None = None, data_dir: str | None = None, k: int = 9,
                    which: str = "best", batch_size: int = 256, device="cpu") -> TopPatches:
    """`top_patches` over the test split of a run's dataset (or of `dataset`), with the
    run's model and normalisation."""
    from cnnzoo.data import build_loader
    from cnnzoo.runs import check_dataset, test_set

    model, config = load_run(run_dir, which=which, device=device)
    _field(model, layer, channel, config["input_size"])  # before any data is read
    ds = test_set(config, dataset, data_dir)
    check_dataset(ds, config, Path(run_dir))
    c = config["input_size"][0]
    loader = build_loader(ds, batch_size, shuffle=False, mean=[0.0] * c, std=[1.0] * c,
                          device=device)  # 0..1 images, for the crops
    classes = list(config.get("classes") or ds.classes)
    return top_patches(model, loader, layer, channel, mean=config["mean"], std=config["std"],
                       k=k, classes=classes)


def _padded(p: Patch, field: LayerField) -> np.ndarray:
    """The crop inside a full receptive-field frame, grey where the field leaves the image,
    so every tile has the same scale and the peak unit sits at its centre."""
    rf = field.rf
    i, j = p.position
    top0, left0 = int(rf.start_h + i * rf.jump_h), int(rf.start_w + j * rf.jump_w)
    c = p.crop.shape[0]
    frame = np.full((int(rf.rf_h), int(rf.rf_w), c), 0.5, dtype=np.float32)
    t, left = p.window[0] - top0, p.window[1] - left0
    frame[t:t + p.crop.shape[1], left:left + p.crop.shape[2]] = p.crop.permute(1, 2, 0).numpy()
    return frame[..., 0] if c == 1 else frame


def plot_top_patches(t: TopPatches, out_png: str | os.PathLike, *, title: str = "") -> Path:
    """Left: the k crops (receptive field of the peak unit; grey = outside the image).
    Right: the same images whole, the window outlined. Atomic PNG."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    n = len(t.patches)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    fig = Figure(figsize=(2.0 * 2 * cols + 0.6, 2.1 * rows + 0.8), layout="constrained")
    sub = fig.subfigures(1, 2, wspace=0.04)
    crops, wholes = sub[0].subplots(rows, cols, squeeze=False), sub[1].subplots(
        rows, cols, squeeze=False)
    for ax in [*crops.ravel(), *wholes.ravel()]:
        ax.set_axis_off()
    for k, p in enumerate(t.patches):
        r, c = divmod(k, cols)
        name = t.classes[p.label] if t.classes and 0 <= p.label < len(t.classes) else p.label
        a = _padded(p, t.field)
        crops[r, c].imshow(a, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        crops[r, c].set_title(f"#{p.index} {name}\nact {p.value:.3f}", fontsize=8)
        img = p.image.permute(1, 2, 0).numpy()
        wholes[r, c].imshow(img[..., 0] if img.shape[2] == 1 else img, cmap="gray", vmin=0,
                            vmax=1, interpolation="nearest")
        top, left, bottom, right = p.window
        wholes[r, c].add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top,
                                         fill=False, ec="red", lw=1.5))
        wholes[r, c].set_title(f"peak at unit {p.position}", fontsize=8)
    rf = t.field.rf
    sub[0].suptitle(f"crops: receptive field {rf.rf} px", fontsize=9)
    sub[1].suptitle("where in the image", fontsize=9)
    fig.suptitle(f"{title + ' ' if title else ''}{t.layer} channel {t.channel}: the {n} "
                 f"images (of {t.seen}) that excite it most", fontsize=11)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(out_png)
