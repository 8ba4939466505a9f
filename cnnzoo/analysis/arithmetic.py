"""Conv arithmetic of the lectures (seed 001): output size `(W - F + 2P) / S + 1`.

The same formula sizes convolutions and pools. A filter "does not fit" when the padded input
is smaller than the (dilated) filter, or, in strict mode, when the stride does not tile the
input exactly (the seed's 7x7 input, 3x3 filter, stride 3: (7 - 3)/3 + 1 = 2.33).
"""

from __future__ import annotations

import math
import re

from cnnzoo.errors import ShapeError


def _axis(size, kernel, stride, padding, dilation, ceil_mode, strict) -> tuple[int | None, str]:
    """(output size, "") along one axis, or (None, why it does not fit)."""
    for name, v, low in (("input", size, 1), ("kernel", kernel, 1), ("stride", stride, 1),
                         ("padding", padding, 0), ("dilation", dilation, 1)):
        if not isinstance(v, int) or v < low:
            raise ShapeError(f"{name} must be an integer >= {low}, got {v!r}")
    k = dilation * (kernel - 1) + 1  # effective (dilated) kernel extent
    span = size - k + 2 * padding
    formula = f"({size} - {k} + 2*{padding})/{stride} + 1 = {span / stride + 1:.2f}"
    if span < 0:
        return None, f"needs at least {k - 2 * padding} pixels ({formula} < 1)"
    if strict and span % stride:  # say what PyTorch would make of it (it floors)
        return None, f"{formula} is not an integer (PyTorch floors it to {span // stride + 1})"
    if ceil_mode:
        out = math.ceil(span / stride) + 1
        if (out - 1) * stride >= size + padding:  # PyTorch: last window must start inside
            out -= 1
        return out, ""
    return span // stride + 1, ""


def conv_output_size(
    size: int,
    kernel: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    *,
    ceil_mode: bool = False,
    strict: bool = True,
    what: str = "filter",
) -> int:
    """Spatial output size of a conv or pool along one axis (square, as on the slides).

    strict=True raises ShapeError when the stride does not tile the input; strict=False
    follows PyTorch (floor, or ceil for ceil_mode pools) and only raises when the filter is
    larger than the padded input.
    """
    out, why = _axis(size, kernel, stride, padding, dilation, ceil_mode, strict)
    if out is None:
        k = dilation * (kernel - 1) + 1
        raise ShapeError(f"{what} does not fit: {k}x{k} {what} (stride {stride}, padding "
                         f"{padding}) on a {size}x{size} input: {why}")
    return out


def conv_output_shape(
    sizes, kernel, stride=1, padding=0, dilation=1, *, ceil_mode: bool = False,
    strict: bool = True, what: str = "filter",
) -> tuple[int, ...]:
    """Output size per axis of an N-D conv or pool; the error names the axis that fails.

    sizes is e.g. (H, W); kernel, stride, padding, dilation are ints or per-axis tuples.
    """
    sizes = tuple(sizes)
    n = len(sizes)
    kernel, stride, padding, dilation = (
        tuple(v) if isinstance(v, (tuple, list)) else (v,) * n
        for v in (kernel, stride, padding, dilation))
    axes = {1: "L", 2: "HW", 3: "DHW"}.get(n, [f"axis {i}" for i in range(n)])
    ks = "x".join(str(d * (k - 1) + 1) for k, d in zip(kernel, dilation))  # dilated extent
    outs = []
    for axis, size, k, s, p, d in zip(axes, sizes, kernel, stride, padding, dilation):
        out, why = _axis(size, k, s, p, d, ceil_mode, strict)
        if out is None:
            raise ShapeError(
                f"{what} does not fit: {ks} {what} (stride {_join(stride)}, padding "
                f"{_join(padding)}) on a {_join(sizes, always=True)} input: along {axis}, {why}"
            )
        outs.append(out)
    return tuple(outs)


def _join(values, always: bool = False) -> str:
    """(2, 2) -> "2", (2, 1) -> "2x1"; always=True keeps every axis (sizes)."""
    values = tuple(values)
    return str(values[0]) if len(set(values)) == 1 and not always else "x".join(map(str, values))


def same_padding(kernel: int, dilation: int = 1) -> int:
    """Zero-padding that keeps the size at stride 1: (F - 1)/2 (seed 001: F=3 -> 1, 5 -> 2)."""
    k = dilation * (kernel - 1) + 1
    if k % 2 == 0:
        raise ShapeError(
            f"no symmetric 'same' padding for an even {k}x{k} filter: (F - 1)/2 = {(k - 1) / 2}"
        )
    return (k - 1) // 2


_INPUT_RE = re.compile(r"^\s*(\d+)\s*[xX,]\s*(\d+)\s*[xX,]\s*(\d+)\s*$")


def parse_input_size(text: str, arg: str = "--input") -> tuple[int, int, int]:
    """Parse "CxHxW" (e.g. "3x224x224") into a positive (C, H, W) tuple."""
    m = _INPUT_RE.match(str(text))
    if not m:
        raise ShapeError(f"{arg} {text!r} is not CxHxW, e.g. 3x224x224")
    c, h, w = (int(g) for g in m.groups())
    if min(c, h, w) < 1:
        raise ShapeError(f"{arg} {text!r}: channels, height and width must be >= 1")
    return c, h, w
