"""Blocks shared by every family: conv-bn-act, concatenated branches, drop-path, auxiliary
outputs, init, the input-size check.

Each lives here once; the family files compose them.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import torch
import torch.nn as nn


class AuxOutput(NamedTuple):
    """Training-mode output of nets with auxiliary classifiers (GoogLeNet, Inception-v3).

    The trainer forms `loss = CE(logits) + aux_weight * sum(CE(a) for a in aux)`.
    In eval mode such nets return the plain logits tensor.
    """

    logits: torch.Tensor
    aux: tuple[torch.Tensor, ...]


def main_logits(out) -> torch.Tensor:
    """The main logits of a model output, whether plain or AuxOutput."""
    return out.logits if isinstance(out, AuxOutput) else out


class ConvBnAct(nn.Sequential):
    """Conv2d (no bias by default) -> BatchNorm -> activation; the unit of every modern family.

    Submodule names `conv`, `bn` follow torchvision's BasicConv2d / Conv2dNormActivation
    naming where the family uses them. `bias=True` keeps the conv's bias (PyTorch's default,
    as the CS324 assignment's "conv layer" asks).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int | tuple[int, int] = 3,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | None = None,
        groups: int = 1,
        act: type[nn.Module] | None = nn.ReLU,
        bn_eps: float = 1e-5,
        bias: bool = False,
    ):
        if padding is None:  # "same" for odd kernels at stride 1
            padding = (
                tuple(k // 2 for k in kernel_size)
                if isinstance(kernel_size, tuple)
                else kernel_size // 2
            )
        layers = [
            ("conv", nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, groups=groups,
                               bias=bias)),
            ("bn", nn.BatchNorm2d(out_ch, eps=bn_eps)),
        ]
        if act is not None:
            layers.append(("act", act(inplace=True)))
        super().__init__(OrderedDict(layers))


class Concat(nn.Module):
    """Run named branches on the same input and concatenate their outputs along depth (the
    Inception modules' DepthConcat). Branches run, and are concatenated, in the order given."""

    def __init__(self, **branches: nn.Module):
        super().__init__()
        for name, branch in branches.items():
            self.add_module(name, branch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.children()], 1)


class DropPath(nn.Module):
    """Drops the whole residual branch per sample with probability `p` (stochastic depth).

    Train: out = x * mask / (1 - p) if `scale_by_keep`, else x * mask.
    Eval: identity when `scale_by_keep` (the inverted form), else x * (1 - p)
    (the expected-value scaling of Huang et al. 2016, applied at test time).
    """

    def __init__(self, p: float = 0.0, scale_by_keep: bool = False):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop-path probability must be in [0, 1), got {p}")
        self.p = p
        self.scale_by_keep = scale_by_keep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0:
            return x
        keep = 1.0 - self.p
        if not self.training:
            return x if self.scale_by_keep else x * keep
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        mask = x.new_empty(shape).bernoulli_(keep)
        return x * mask / keep if self.scale_by_keep else x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}, scale_by_keep={self.scale_by_keep}"


def init_weights(model: nn.Module, nonlinearity: str = "relu") -> nn.Module:
    """The lectures' initialisation: He ("Xavier/2") for ReLU nets, Xavier for tanh/sigmoid.

    Biases zero, BatchNorm gamma 1 / beta 0; never all-zero weights.
    """
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if nonlinearity == "relu":
                # Convs: torchvision's fan_out form. Linear layers: fan_in, so a 4096->10
                # classifier starts with logits of unit scale (fan_out would give std 0.45
                # weights and an initial loss of 15-35 instead of ~ln(classes)).
                mode = "fan_in" if isinstance(m, nn.Linear) else "fan_out"
                nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")
            else:
                nn.init.xavier_uniform_(m.weight, gain=nn.init.calculate_gain(nonlinearity))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            if m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
    return model


def check_min_size(model_name: str, h: int, w: int, min_size: int,
                   small_input: bool = False) -> None:
    """Fail early, with the numbers, when an input is too small for the network's stem.

    The message suggests `small_input=True` unless the model already has the small stem.
    """
    if h < min_size or w < min_size:
        from cnnzoo.errors import ShapeError

        hint = "" if small_input else " (use small_input=True for a 28/32-pixel stem)"
        raise ShapeError(
            f"{model_name}: input {h}x{w} is too small; it needs at least "
            f"{min_size}x{min_size}{hint}"
        )
