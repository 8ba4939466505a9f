"""Conv arithmetic of the lectures (seed 001): output size `(W - F + 2P) / S + 1`.

The same formula sizes convolutions and pools. A filter "does not fit" when the padded input
is smaller than the (dilated) filter, or, in strict mode, when the stride does not tile the
input exactly (the seed's 7x7 input, 3x3 filter, stride 3: (7 - 3)/3 + 1 = 2.33).
"""

from __future__ import annotations

import math
import re

from cnnzoo.errors import ShapeError


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
    """Spatial output size of a conv or pool along one axis.

    strict=True raises ShapeError when the stride does not tile the input; strict=False
    follows PyTorch (floor, or ceil for ceil_mode pools) and only raises when the filter is
    larger than the padded input.
    """
    for name, v, low in (("input", size, 1), ("kernel", kernel, 1), ("stride", stride, 1),
                         ("padding", padding, 0), ("dilation", dilation, 1)):
        if not isinstance(v, int) or v < low:
            raise ShapeError(f"{name} must be an integer >= {low}, got {v!r}")
    k = dilation * (kernel - 1) + 1  # effective (dilated) kernel extent
    span = size - k + 2 * padding
    formula = f"({size} - {k} + 2*{padding})/{stride} + 1"
    if span < 0:
        raise ShapeError(
            f"{what} does not fit: {k}x{k} {what} on a {size}x{size} input with padding "
            f"{padding} needs at least {k - 2 * padding} pixels ({formula} = "
            f"{span / stride + 1:.2f} < 1)"
        )
    if strict and span % stride:
        raise ShapeError(
            f"{what} does not fit: {k}x{k} {what} at stride {stride} on a {size}x{size} input "
            f"with padding {padding}: {formula} = {span / stride + 1:.2f} is not an integer"
        )
    if ceil_mode:
        out = math.ceil(span / stride) + 1
        if (out - 1) * stride >= size + padding:  # PyTorch: last window must start inside
            out -= 1
        return out
    return span // stride + 1


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
