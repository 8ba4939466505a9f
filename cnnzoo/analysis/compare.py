"""Compare networks side by side, and draw the lectures' "comparing complexity" figure.

Canziani et al. 2016 (the figure in seed 001): ImageNet accuracy against operations, bubble
area proportional to the number of parameters.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

import torch

from cnnzoo.analysis.profile import profile
from cnnzoo.errors import CnnzooError
from cnnzoo.utils.io import atomic_path


@dataclass
class Comparison:
    model: str
    input_size: tuple[int, int, int]
    params: int
    macs: int
    activation_bytes: int
    accuracy: float | None  # ImageNet accuracy the paper reports (%), 100 - error
    accuracy_kind: str  # "top-1", "top-5" or "" when the zoo has no published number
    latency_ms: float | None = None  # median CPU forward time at batch 1, when measured

    def as_dict(self) -> dict:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        return d


def measure_latency(name: str, input_size, iters: int = 3) -> float:
    """Median milliseconds of a real CPU forward at batch 1 (eval mode, no grad)."""
    from cnnzoo.models.registry import create_model

    model = create_model(name, in_chans=input_size[0]).eval()
    x = torch.randn(1, *input_size)
    times = []
    with torch.no_grad():
        model(x)  # warm-up: first call pays for allocation and kernel selection
        for _ in range(iters):
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def compare(models: list[str], input_size=None, *, latency: bool = False,
            iters: int = 3) -> list[Comparison]:
    """One row per model; numbers come from `profile` (meta tensors) and ModelInfo."""
    from cnnzoo.models.registry import model_info

    rows = []
    for name in models:
        info = model_info(name)
        p = profile(name, input_size, training=False)
        if info.top1_err is not None:
            acc, kind = 100 - info.top1_err, "top-1"
        elif info.top5_err is not None:
            acc, kind = 100 - info.top5_err, "top-5"
        else:
            acc, kind = None, ""
        rows.append(Comparison(name, p.input_size, p.params, p.macs, p.activation_bytes, acc,
                               kind, measure_latency(name, p.input_size, iters) if latency
                               else None))
    return rows


def bubble_chart(rows: list[Comparison], path) -> int:
    """Accuracy vs GMACs, bubble area = params; returns how many models were drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn = [r for r in rows if r.accuracy is not None]
    if not drawn:
        raise CnnzooError("--plot: none of these models has a published ImageNet accuracy")
    # top-1 and top-5 accuracies are not on one scale: one panel per kind the papers report
    kinds = sorted({r.accuracy_kind for r in drawn})
    fig, axes = plt.subplots(1, len(kinds), figsize=(7 * len(kinds), 5.5), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        for r in (r for r in drawn if r.accuracy_kind == kind):
            ax.scatter(r.macs / 1e9, r.accuracy, s=r.params / 1e5, alpha=0.45,
                       edgecolors="black")
            ax.annotate(r.model, (r.macs / 1e9, r.accuracy), fontsize=8, ha="center",
                        va="center")
        ax.set_xlabel("operations (G multiply-accumulates per image)")
        ax.set_ylabel(f"ImageNet {kind} accuracy (%) reported by the paper")
        ax.margins(0.15)
        ax.grid(alpha=0.3)
    fig.suptitle("Comparing complexity (bubble area = parameters)")
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=120)
    except OSError as e:
        raise CnnzooError(f"--plot {path}: cannot write ({e.strerror})") from None
    finally:
        plt.close(fig)
    return len(drawn)
