"""Receptive field and effective stride ("jump"), propagated through every tensor op.

A conv or pool with kernel k, stride s, dilation d maps (rf, jump) to
(rf + (k - 1) * d * jump, jump * s) per axis; an op that merges tensors (add, cat, mul)
takes the largest field of its inputs, so branching networks (Inception, ResNet, DenseNet)
get the field of their widest path. An op that collapses the spatial grid (global pooling,
flatten before a fully-connected layer) sees the whole feature map.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch


class RF(NamedTuple):
    """Receptive field (pixels of the input) and effective stride, per axis (H, W)."""

    rf_h: int = 1
    rf_w: int = 1
    jump_h: int = 1
    jump_w: int = 1

    def after(self, kernel, stride, dilation=(1, 1)) -> RF:
        (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
        return RF(
            self.rf_h + (kh - 1) * dh * self.jump_h,
            self.rf_w + (kw - 1) * dw * self.jump_w,
            self.jump_h * sh,
            self.jump_w * sw,
        )

    def whole(self, h: int, w: int) -> RF:
        """A unit that sees the whole h x w feature map (global pool, FC after flatten)."""
        return self.after((h, w), (h, w))

    @property
    def rf(self) -> int | str:
        return self.rf_h if self.rf_h == self.rf_w else f"{self.rf_h}x{self.rf_w}"

    @property
    def jump(self) -> int | str:
        return self.jump_h if self.jump_h == self.jump_w else f"{self.jump_h}x{self.jump_w}"


def merge(fields) -> RF:
    """The field of an op combining tensors: the largest field and stride of its inputs."""
    fields = list(fields)
    if not fields:
        return RF()
    return RF(*(max(f[i] for f in fields) for i in range(4)))


def stacked_rf(layers) -> RF:
    """RF of a plain stack of (kernel, stride[, dilation]) layers, e.g. [(3, 1)] * 3 -> 7."""
    out = RF()
    for layer in layers:
        k, s, d = (tuple(layer) + (1,))[:3]
        out = out.after((k, k), (s, s), (d, d))
    return out


def _pair(v, default):
    if v is None or (isinstance(v, (list, tuple)) and len(v) == 0):
        v = default
    if isinstance(v, (list, tuple)):
        return (int(v[0]), int(v[-1]))
    return (int(v), int(v))


def window(func, args) -> tuple | None:
    """(kernel, stride, padding, dilation, ceil_mode) of a 2-D conv/pool aten op, else None."""
    name = func.__name__ if hasattr(func, "__name__") else str(func)
    op = name.split(".")[0]
    x = args[0] if args else None
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        return None
    if op == "convolution":
        w = args[1]
        if args[6] or w.ndim != 4:  # transposed or not 2-D
            return None
        return (tuple(w.shape[2:]), _pair(args[3], 1), _pair(args[4], 0), _pair(args[5], 1),
                False)
    if op in ("max_pool2d", "max_pool2d_with_indices", "avg_pool2d"):
        k = _pair(args[1], 1)
        s = _pair(args[2] if len(args) > 2 else None, k)
        p = _pair(args[3] if len(args) > 3 else 0, 0)
        if op == "avg_pool2d":
            d, ceil = (1, 1), bool(args[4]) if len(args) > 4 else False
        else:
            d = _pair(args[4] if len(args) > 4 else 1, 1)
            ceil = bool(args[5]) if len(args) > 5 else False
        return (k, s, p, d, ceil)
    if op in ("_adaptive_avg_pool2d", "adaptive_max_pool2d", "adaptive_avg_pool2d"):
        (h, w), (oh, ow) = x.shape[2:], _pair(args[1], 1)
        # PyTorch's adaptive bins: stride n // o, widest bin ceil(n / o) (+1 if uneven)
        k = tuple(math.ceil(n / o) + (n % o != 0) for n, o in ((h, oh), (w, ow)))
        s = (max(h // oh, 1), max(w // ow, 1))
        return (k, s, (0, 0), (1, 1), None)
    return None


def propagate(func, args, inputs: list[tuple[torch.Tensor, RF]], out: torch.Tensor) -> RF:
    """RF of `out` = func(*args) given the RFs of its tensor inputs."""
    base = merge(rf for _, rf in inputs)
    win = window(func, args)
    if win is not None:
        kernel, stride, _, dilation, _ = win
        return merge(rf for t, rf in inputs if t is args[0]).after(kernel, stride, dilation)
    spatial = [t for t, _ in inputs if t.ndim >= 3]
    if spatial:
        h, w = spatial[0].shape[-2:]
        collapsed = out.ndim < 3 or (tuple(out.shape[-2:]) == (1, 1) and h * w > 1)
        if collapsed:  # mean over H, W or flatten before an FC layer: sees everything
            return merge(rf.whole(*t.shape[-2:]) for t, rf in inputs if t.ndim >= 3)
    return base
