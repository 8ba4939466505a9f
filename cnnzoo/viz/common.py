"""What the looking-inside pictures share: a run's model, its images as the model sees them,
checked layer / channel / class arguments, and the default layer to look at."""

from __future__ import annotations

import torch
import torch.nn as nn

from cnnzoo.errors import CnnzooError, ShapeError
from cnnzoo.runs import load_run, read_run_image  # noqa: F401  (re-exported)


def normalise(x: torch.Tensor, config: dict) -> torch.Tensor:
    """0..1 images [..., C, H, W] -> what the run's model takes (its mean / std)."""
    shape = (-1, 1, 1)
    mean = torch.tensor(config["mean"], dtype=x.dtype, device=x.device).view(shape)
    std = torch.tensor(config["std"], dtype=x.dtype, device=x.device).view(shape)
    return (x - mean) / std


def output_shapes(model: nn.Module, input_size) -> dict[str, tuple[int, ...]]:
    """Every named module's output shape per image ({name: (C, H, W) or (F,)}), in the
    order the modules finish, from one pass on meta tensors (no data, no memory)."""
    from cnnzoo.analysis import meta_copy

    net = meta_copy(model).eval()
    shapes: dict[str, tuple[int, ...]] = {}

    def hook(name):
        def fn(_module, _inputs, out):  # returns None: the output is left as it is
            if torch.is_tensor(out) and name not in shapes:
                shapes[name] = tuple(out.shape[1:])
        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in net.named_modules() if n]
    try:
        with torch.no_grad():
            net(torch.empty((1, *input_size), device="meta"))
    finally:
        for h in handles:
            h.remove()
    return shapes


def default_layer(model: nn.Module, input_size) -> str:
    """The layer a class-activation map is taken from by default: the last feature stage
    (`model.stage_names[-1]`) whose map is larger than 1x1, else the last module that
    outputs such a map."""
    shapes = output_shapes(model, input_size)

    def spatial(n):
        s = shapes.get(n, ())
        return len(s) == 3 and s[1] * s[2] > 1

    stages = [s for s in getattr(model, "stage_names", ()) if spatial(s)]
    if stages:
        return stages[-1]
    names = [n for n in shapes if spatial(n)]
    if not names:
        raise ShapeError(f"{_name(model)} has no layer with a spatial feature map")
    return names[-1]


def check_index(value: int, count: int, flag: str, where: str, noun: str) -> int:
    """`value` in 0..count-1, else one line: '--channel 20 out of range: layer c3 has 16
    channels (0-15)'."""
    if not 0 <= int(value) < count:
        raise CnnzooError(f"--{flag} {value} out of range: {where} has {count} {noun} "
                          f"(0-{count - 1})")
    return int(value)


def _name(model: nn.Module) -> str:
    return getattr(model, "model_name", type(model).__name__)
