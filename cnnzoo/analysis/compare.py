"""Compare networks side by side, and draw the lectures' "comparing complexity" figure.

Canziani et al. 2016 (the figure in seed 001): ImageNet top-1 accuracy against operations,
bubble area proportional to the number of parameters. The accuracy plotted is ModelInfo's
`ref_top1_acc`: one model, one centre crop, reference weights, so every point is on one
scale. The lectures' ILSVRC numbers (`top5_err`, partly ensembles and multi-crop) stay in
the table as a separate column and are never plotted.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass

import torch

from cnnzoo.analysis.profile import profile
from cnnzoo.errors import CnnzooError
from cnnzoo.utils.io import atomic_path

MAX_BUBBLE = 2500.0  # marker area (points^2) of the model with the most parameters


@dataclass
class Comparison:
    model: str
    input_size: tuple[int, int, int]
    params: int
    macs: int
    activation_bytes: int
    top1_acc: float | None  # single-model single-crop ImageNet top-1 (%), reference weights
    # (None when the zoo has no number, or the input size / builder options differ from it)
    top1_source: str  # where top1_acc comes from ("" when the zoo has no number)
    lecture_top5_err: float | None  # the lectures' ILSVRC top-5 error quote (%)
    latency_ms: float | None = None  # median CPU forward time at batch 1, when measured

    def as_dict(self) -> dict:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        return d


@dataclass
class Bubble:
    """One plotted point: x = G-MACs, y = top-1 accuracy, area (points^2) ∝ params."""

    model: str
    gmacs: float
    top1_acc: float
    area: float


def _knobs_for(name: str, knobs: dict | None, small_input: bool) -> dict:
    from cnnzoo.models.registry import model_info

    out = dict(knobs or {})
    if small_input and "small_input" in model_info(name).knobs:  # others are natively small
        out["small_input"] = True
    return out


def measure_latency(name: str, input_size, iters: int = 3, **knobs) -> float:
    """Median milliseconds of a real CPU forward at batch 1 (eval mode, no grad)."""
    from cnnzoo.models.registry import create_model

    model = create_model(name, in_chans=input_size[0], **knobs).eval()
    x = torch.randn(1, *input_size)
    times = []
    with torch.no_grad():
        model(x)  # warm-up: first call pays for allocation and kernel selection
        for _ in range(iters):
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def compare(models: list[str], input_size=None, *, latency: bool = False, iters: int = 3,
            knobs: dict | None = None, small_input: bool = False) -> list[Comparison]:
    """One row per model; numbers come from `profile` (meta tensors) and ModelInfo.

    knobs go to every model's builder; small_input=True goes only to the models that have
    that knob (the others take small images natively). The reference top-1 is that of the
    default build at the model's own input size: with another input size or any builder
    option it does not describe the network profiled, so the row has none (and is not
    plotted).
    """
    from cnnzoo.models.registry import model_info

    rows = []
    for name in models:
        info = model_info(name)
        kw = _knobs_for(name, knobs, small_input)
        p = profile(name, input_size, training=False, **kw)
        as_published = p.input_size == tuple(info.input_size) and not kw
        acc = getattr(info, "ref_top1_acc", None) if as_published else None
        rows.append(Comparison(
            name, p.input_size, p.params, p.macs, p.activation_bytes, acc,
            getattr(info, "ref_source", "") if acc is not None else "", info.top5_err,
            measure_latency(name, p.input_size, iters, **kw) if latency else None))
    return rows


def bubbles(rows: list[Comparison]) -> tuple[list[Bubble], list[str]]:
    """The points of the bubble chart, and the models left out (no reference top-1)."""
    drawn = [r for r in rows if r.top1_acc is not None]
    most = max((r.params for r in drawn), default=1)
    points = [Bubble(r.model, r.macs / 1e9, r.top1_acc, MAX_BUBBLE * r.params / most)
              for r in drawn]
    return points, [r.model for r in rows if r.top1_acc is None]


def _label(fig, ax, points: list[Bubble]) -> None:
    """Name each bubble: inside it when the name fits, else beside it (right, left, above,
    below), at the first place that covers no other name and no other bubble, so that a
    name never sits next to a bubble it does not belong to."""
    from matplotlib.transforms import Bbox

    renderer = fig.canvas.get_renderer()
    px = fig.dpi / 72  # display pixels per point
    circles = {}  # display-space boxes of the bubbles
    for b in points:
        x, y = ax.transData.transform((b.gmacs, b.top1_acc))
        r = math.sqrt(b.area / math.pi) * px
        circles[b.model] = Bbox.from_extents(x - r, y - r, x + r, y + r)
    names = []  # display-space boxes of the names placed so far
    for b in sorted(points, key=lambda b: -b.area):
        r = math.sqrt(b.area / math.pi)  # bubble radius in points
        d = r + 2
        options = []
        for offset, ha, va in [((0, 0), "center", "center"), ((d, 0), "left", "center"),
                               ((-d, 0), "right", "center"), ((0, d), "center", "bottom"),
                               ((0, -d), "center", "top")]:
            text = ax.annotate(b.model, (b.gmacs, b.top1_acc), xytext=offset, fontsize=8,
                               textcoords="offset points", ha=ha, va=va)
            box = text.get_window_extent(renderer)
            if offset == (0, 0) and box.width > 2 * r * px:
                text.remove()  # the name does not fit inside its bubble
                continue
            clear_names = not any(box.overlaps(o) for o in names)
            clear_bubbles = not any(box.overlaps(c) for m, c in circles.items() if m != b.model)
            options.append((-(clear_names + clear_bubbles), len(options), text, box))
        _, _, keep, box = min(options, key=lambda o: o[:2])  # the clearest, first in order
        for _, _, text, _ in options:
            if text is not keep:
                text.remove()
        names.append(box)


def _size_legend(ax, most: int) -> None:
    """Reference bubbles (round parameter counts up to the largest model's), beside the
    axes so that they hide no data."""
    from matplotlib.lines import Line2D

    sizes = [v for v in (1e6, 5e6, 25e6, 100e6) if v <= most][-3:] or [most]
    diameter = [math.sqrt(MAX_BUBBLE * v / most) for v in sizes]  # markersize**2 = area
    handles = [Line2D([], [], ls="", marker="o", markersize=m, markerfacecolor="C0",
                      markeredgecolor="black", alpha=0.45, label=f"{v / 1e6:g}M")
               for v, m in zip(sizes, diameter)]
    font = 8
    ax.legend(handles=handles, title="parameters", loc="upper left", bbox_to_anchor=(1.02, 1),
              fontsize=font, title_fontsize=font, labelspacing=max(diameter) / font,
              borderpad=max(diameter) / font / 2, handlelength=max(diameter) / font,
              handletextpad=1.0, frameon=False)


def bubble_figure(rows: list[Comparison]):
    """A matplotlib Figure: top-1 accuracy vs G-MACs, one scatter, area ∝ params."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points, skipped = bubbles(rows)
    if not points:
        raise CnnzooError("--plot: none of these models has a single-crop reference top-1 "
                          "accuracy (ModelInfo.ref_top1_acc) at this input size and build to "
                          "plot")
    fig, ax = plt.subplots(figsize=(9, 6))
    ax.scatter([b.gmacs for b in points], [b.top1_acc for b in points],
               s=[b.area for b in points], alpha=0.45, edgecolors="black")
    most = max(r.params for r in rows if r.top1_acc is not None)
    ax.set_xlabel("operations (G multiply-accumulates per image)")
    ax.set_ylabel("ImageNet top-1 accuracy (%), single model, single crop")
    ax.set_title(f"Comparing complexity (bubble area ∝ parameters; largest "
                 f"{most / 1e6:.1f}M)")
    ax.margins(0.15)
    ax.grid(alpha=0.3)
    _size_legend(ax, most)
    if skipped:
        fig.text(0.01, 0.01, "not plotted (no reference top-1): " + ", ".join(skipped),
                 fontsize=7, ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.03 if skipped else 0, 1, 1))
    _label(fig, ax, points)  # after the layout: the names are placed in display space
    return fig


def bubble_chart(rows: list[Comparison], path) -> list[Bubble]:
    """Write the bubble chart as PNG (atomically); returns the plotted points."""
    import matplotlib.pyplot as plt

    fig = bubble_figure(rows)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=120)
    except OSError as e:
        raise CnnzooError(f"--plot {path}: cannot write ({e.strerror})") from None
    finally:
        plt.close(fig)
    return bubbles(rows)[0]
