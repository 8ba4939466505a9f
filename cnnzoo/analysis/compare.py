"""Compare networks side by side, and draw the lectures' "comparing complexity" figure.

Canziani et al. 2016 (the figure in seed 001): ImageNet top-1 accuracy against operations,
bubble area proportional to the number of parameters. The accuracy plotted is ModelInfo's
`ref_top1_acc`: one model, one centre crop, reference weights, so every point is on one
scale. The lectures' ILSVRC numbers (`top5_err`, partly ensembles and multi-crop) stay in
the table as a separate column and are never plotted.
"""

from __future__ import annotations

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
    that knob (the others take small images natively).
    """
    from cnnzoo.models.registry import model_info

    rows = []
    for name in models:
        info = model_info(name)
        kw = _knobs_for(name, knobs, small_input)
        p = profile(name, input_size, training=False, **kw)
        acc = getattr(info, "ref_top1_acc", None)  # the field is newer than this module
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


def bubble_figure(rows: list[Comparison]):
    """A matplotlib Figure: top-1 accuracy vs G-MACs, one scatter, area ∝ params."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points, skipped = bubbles(rows)
    if not points:
        raise CnnzooError("--plot: none of these models has a single-crop reference top-1 "
                          "accuracy (ModelInfo.ref_top1_acc) to plot")
    fig, ax = plt.subplots(figsize=(8, 6))
    ax.scatter([b.gmacs for b in points], [b.top1_acc for b in points],
               s=[b.area for b in points], alpha=0.45, edgecolors="black")
    for b in points:
        ax.annotate(b.model, (b.gmacs, b.top1_acc), fontsize=8, ha="center", va="center")
    most = max(r.params for r in rows if r.top1_acc is not None)
    ax.set_xlabel("operations (G multiply-accumulates per image)")
    ax.set_ylabel("ImageNet top-1 accuracy (%), single model, single crop")
    ax.set_title(f"Comparing complexity (bubble area ∝ parameters; largest "
                 f"{most / 1e6:.1f}M)")
    ax.margins(0.15)
    ax.grid(alpha=0.3)
    if skipped:
        fig.text(0.01, 0.01, "not plotted (no reference top-1): " + ", ".join(skipped),
                 fontsize=7, ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.03 if skipped else 0, 1, 1))
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
