"""Watching it learn (lectures, "Monitoring the learning process", 3-5).

- update / weight ratio per weight tensor: ||w_after - w_before|| / ||w_before|| over one
  optimizer step (the actual change, so momentum and Adam scaling count). About 1e-3 is
  healthy and the slide calls 1e-2 "within a relatively healthy limit"; below 1e-4 the
  learning rate is too low, above 3e-2 too high (Adam's one-cycle peak sits near 1e-2).
- activation variance per layer on a fixed probe batch (forward hooks): variance that
  collapses towards 0 with depth means vanishing activations (bad init); a ReLU layer whose
  outputs are > 99% zeros is dead.
- gradient norm per weight tensor.
- first-layer filters as a PNG each epoch (smooth filters: training goes well).
"""

from __future__ import annotations

import torch
import torch.nn as nn

# The measurement is the variance picture's (cnnzoo.viz.variance); the monitor runs it each epoch.
from cnnzoo.viz.variance import VAR_MIN, activation_stats  # noqa: F401  (re-exported)

RATIO_LOW, RATIO_HIGH = 1e-4, 3e-2
DEAD_FRACTION = 0.99


def watched_params(model: nn.Module) -> dict[str, nn.Parameter]:
    """Weight tensors (conv/linear kernels); biases and BN scales start at 0/1: no ratio."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad and p.ndim > 1}


class UpdateRatio:
    """Snapshot the weights before one step; compare after it."""

    def __init__(self, model: nn.Module):
        self.params = watched_params(model)
        self.before: dict[str, torch.Tensor] | None = None

    def snapshot(self) -> None:
        self.before = {n: p.detach().clone() for n, p in self.params.items()}

    def grad_norms(self) -> dict[str, float]:
        return _read({n: p.grad.norm() for n, p in self.params.items() if p.grad is not None})

    def ratios(self) -> dict[str, float]:
        out = _read({n: (p.detach() - self.before[n]).norm()
                     / self.before[n].norm().clamp_min(1e-12) for n, p in self.params.items()})
        self.before = None
        return out


def _read(values: dict[str, torch.Tensor]) -> dict[str, float]:
    """Scalar tensors to floats in one device sync (per layer, a GPU would stall per layer);
    float64 holds each float32 value exactly, as float() does."""
    if not values:
        return {}
    return dict(zip(values, torch.stack([v.double() for v in values.values()]).tolist()))


def health_warnings(ratios: dict, var: dict, zeros: dict, annealing: bool = False
                    ) -> list[tuple[str, str]]:
    """The lectures' rules of thumb as (layer:kind, message), one per offending layer.

    `annealing`: the schedule has cut the lr on purpose (< 10% of the base), so small
    ratios are expected and not reported.
    """
    out = []
    for n, r in ratios.items():
        if r < RATIO_LOW and not annealing:
            out.append((f"{n}:low", f"{n}: update/weight ratio {r:.1e} < {RATIO_LOW:.0e}: "
                        "learning rate too low (or the layer is stuck)"))
        elif r > RATIO_HIGH:
            out.append((f"{n}:high", f"{n}: update/weight ratio {r:.1e} > {RATIO_HIGH:.0e}: "
                        "learning rate too high"))
    for n, v in var.items():
        if v < VAR_MIN:
            out.append((f"{n}:var", f"{n}: activation variance {v:.1e} < {VAR_MIN:.0e}: "
                        "activations vanish (check the initialisation)"))
    for n, z in zeros.items():
        if z > DEAD_FRACTION:
            out.append((f"{n}:dead", f"{n}: {z:.1%} of activations are zero: dead ReLU layer"))
    return out


def save_first_filters(model: nn.Module, path, title: str) -> bool:
    """First conv layer's filters as a PNG (cnnzoo.viz.filters); False if there is none."""
    from cnnzoo.errors import ShapeError
    from cnnzoo.viz.filters import first_conv_weight, save_filter_grid

    try:
        w = first_conv_weight(model)
    except ShapeError:
        return False
    save_filter_grid(w, path, title=title)
    return True
