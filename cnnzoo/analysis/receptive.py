"""Receptive field and effective stride ("jump"), propagated through every tensor op.

A conv or pool with kernel k, stride s, padding p, dilation d maps (rf, jump, start) to
(rf + (k - 1) * d * jump, jump * s, start - p * jump) per axis, where `start` is the input
coordinate of the first pixel in the field of unit 0 (negative with padding): unit i sees
input pixels start + i * jump ... start + i * jump + rf - 1 (a padding op shifts start the
same way; a transposed conv with stride 1 pads by (k - 1) * d - p). An op that merges
tensors (add, cat, mul) takes the union of its inputs' fields, so branching networks
(Inception, ResNet, DenseNet) get the field of their widest path. An op that collapses the
spatial grid (global pooling, flatten before a fully-connected layer) sees the whole map.

Upsampling (transposed conv, interpolate, pixel shuffle, adaptive pooling with uneven bins)
breaks that closed form: how many coarse pixels a window of fine pixels touches depends on
how it falls on the coarse grid. From the first such op on, a tensor's field is kept as a
small graph and evaluated top-down (Araujo et al. 2019, Distill): a window of r outputs of
a conv reads s (r - 1) + (k - 1) d + 1 inputs; of a transposed conv,
floor((r - 1 + (k - 1) d) / s) + 1; of an interpolation with `taps` inputs per output
(nearest 1, bilinear 2, bicubic 4) and q input pixels per output pixel, ceil((r - 1) q) + taps;
merges take the largest. That is the worst case over alignments, an upper bound that is
exact for a single path. The jump is then a fraction (1/2 after a 2x upsampling).

The field is tracked over H and W only: 1-D convs and interpolations (a sequence, no H x W
grid) and ops that move pixels arbitrarily (grid_sample, unfold) make it "n/a"; 3-D convs
and pools contribute their H x W part (their depth axis is also LRN's channel window).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import NamedTuple

import torch

# Ops whose output pixels depend on input pixels in a data- or layout-dependent way.
UNTRACKED_OPS = {"grid_sampler_2d", "grid_sampler_3d", "im2col", "col2im"}
# Ops that add (or, negative, remove) rows and columns around the map: they move the start.
PAD_OPS = {"constant_pad_nd", "reflection_pad2d", "replication_pad2d", "reflection_pad3d",
           "replication_pad3d"}


class RF(NamedTuple):
    """Receptive field (pixels of the input), effective stride and the start of unit 0's
    field (input coordinate, negative with padding), per axis (H, W).

    Values are ints, or Fractions after upsampling. RF.NA (all zero) means "not tracked".
    """

    rf_h: int | Fraction = 1
    rf_w: int | Fraction = 1
    jump_h: int | Fraction = 1
    jump_w: int | Fraction = 1
    start_h: int | Fraction = 0
    start_w: int | Fraction = 0

    @property
    def na(self) -> bool:
        return self.rf_h == 0

    def after(self, kernel, stride, dilation=(1, 1), padding=(0, 0)) -> RF:
        if self.na:
            return self
        (kh, kw), (sh, sw), (dh, dw), (ph, pw) = kernel, stride, dilation, padding
        return RF(
            self.rf_h + (kh - 1) * dh * self.jump_h,
            self.rf_w + (kw - 1) * dw * self.jump_w,
            self.jump_h * sh,
            self.jump_w * sw,
            self.start_h - ph * self.jump_h,
            self.start_w - pw * self.jump_w,
        )

    def shifted(self, top, left) -> RF:
        """The field after `top` rows / `left` columns are added before the map (padding;
        negative: cropped away), which moves where unit 0 starts."""
        if self.na:
            return self
        return self._replace(start_h=self.start_h - top * self.jump_h,
                             start_w=self.start_w - left * self.jump_w)

    def whole(self, h: int, w: int) -> RF:
        """A unit that sees the whole h x w feature map (global pool, FC after flatten)."""
        return self.after((h, w), (h, w))

    @property
    def rf(self) -> int | str:
        if self.na:
            return "n/a"
        h, w = math.ceil(self.rf_h), math.ceil(self.rf_w)
        return h if h == w else f"{h}x{w}"

    @property
    def jump(self) -> int | str:
        if self.na:
            return "n/a"
        h, w = _num(self.jump_h), _num(self.jump_w)
        return h if h == w else f"{h}x{w}"


RF.NA = RF(0, 0, 0, 0, 0, 0)


def _num(v) -> int | str:
    """An int, or "1/2" for a fractional stride (JSON-safe)."""
    v = Fraction(v)
    return v.numerator if v.denominator == 1 else str(v)


class Node:
    """A field after upsampling: evaluated top-down, per axis, for a window of r outputs."""

    def __init__(self, kind: str, parents: list, params: tuple, jump: tuple):
        self.kind, self.parents, self.params = kind, parents, params  # params per axis
        self.jump_h, self.jump_w = jump
        self.memo: dict[tuple[int, int], int] = {}

    na = False

    def _request(self, axis: int, r: int) -> int:
        """How many positions of the parent(s) a window of r positions here reads."""
        p = self.params[axis]
        if self.kind == "window":
            k, s, d = p
            return s * (r - 1) + (k - 1) * d + 1
        if self.kind == "transposed":
            k, s, d = p
            return (r - 1 + (k - 1) * d) // s + 1
        if self.kind == "resample":
            q, taps = p
            return math.ceil((r - 1) * q) + taps
        if self.kind == "adaptive":
            n, o = p
            if r > o:  # wider than the map: continue at the mean bin distance
                return n + math.ceil((r - o) * Fraction(n, o))
            return max(-(-(i + r) * n // o) - i * n // o for i in range(o - r + 1))
        if self.kind == "whole":
            return p
        return r  # merge

    def extent(self, axis: int, r: int = 1) -> int:
        """Input pixels a window of r positions of this tensor depends on (upper bound).
        Iterative, so that a deep decoder does not hit Python's recursion limit."""
        stack = [(self, r)]
        while stack:
            node, rr = stack[-1]
            if (axis, rr) in node.memo:
                stack.pop()
                continue
            need = node._request(axis, rr)
            missing = [(q, need) for q in node.parents
                       if isinstance(q, Node) and (axis, need) not in q.memo]
            if missing:
                stack.extend(missing)
                continue
            node.memo[axis, rr] = max(_extent(q, axis, need) for q in node.parents)
            stack.pop()
        return self.memo[axis, r]

    @property
    def rf(self) -> int | str:
        h, w = self.extent(0), self.extent(1)
        return h if h == w else f"{h}x{w}"

    @property
    def jump(self) -> int | str:
        h, w = _num(self.jump_h), _num(self.jump_w)
        return h if h == w else f"{h}x{w}"

    def after(self, kernel, stride, dilation=(1, 1), padding=None) -> Node:
        return Node("window", [self], tuple(zip(kernel, stride, dilation)),
                    (self.jump_h * stride[0], self.jump_w * stride[1]))

    def whole(self, h: int, w: int) -> Node:
        return Node("whole", [self], (h, w), (self.jump_h * h, self.jump_w * w))

    def shifted(self, top, left) -> Node:
        return self  # a Node tracks extents only, not where a field starts


def _extent(field, axis: int, r: int) -> int:
    if isinstance(field, Node):
        return field.memo[axis, r]
    rf, jump = (field.rf_h, field.jump_h) if axis == 0 else (field.rf_w, field.jump_w)
    return math.ceil(rf + (r - 1) * jump)


def merge(fields) -> RF | Node:
    """The field of an op combining tensors: the union of its inputs' fields (the largest
    when they are nested, as in every branch that pads by (k - 1) / 2), the largest stride."""
    fields = list({id(f): f for f in fields}.values())
    if not fields:
        return RF()
    if any(f.na for f in fields):
        return RF.NA
    if len(fields) == 1:
        return fields[0]
    if any(isinstance(f, Node) for f in fields):
        return Node("merge", fields, (None, None),
                    (max(f.jump_h for f in fields), max(f.jump_w for f in fields)))
    start_h, start_w = min(f.start_h for f in fields), min(f.start_w for f in fields)
    return RF(max(f.start_h + f.rf_h for f in fields) - start_h,
              max(f.start_w + f.rf_w for f in fields) - start_w,
              max(f.jump_h for f in fields), max(f.jump_w for f in fields), start_h, start_w)


def _sliced(src, x: torch.Tensor, args) -> RF | Node:
    """x[..., a:b:step] along H or W: the kept rows start at a; a step > 1 is a stride."""
    dim = int(args[1]) % x.ndim
    size = int(x.shape[dim])
    begin = int(args[2]) if len(args) > 2 and args[2] is not None else 0
    begin = min(max(begin + size if begin < 0 else begin, 0), size)
    step = int(args[4]) if len(args) > 4 else 1
    on_h = dim == x.ndim - 2
    src = src.shifted(-begin if on_h else 0, 0 if on_h else -begin)
    if step == 1:
        return src
    return src.after((1, 1), (step, 1) if on_h else (1, step))


def _upsampled(src, kind: str, params: tuple, scale: tuple) -> RF | Node:
    """A field through an upsampling op (or one with uneven bins): a Node from here on."""
    if src.na:
        return src
    return Node(kind, [src], params, (src.jump_h * scale[0], src.jump_w * scale[1]))


def stacked_rf(layers) -> RF:
    """RF of a plain stack of (kernel, stride[, dilation]) layers, e.g. [(3, 1)] * 3 -> 7."""
    out = RF()
    for layer in layers:
        k, s, d = (tuple(layer) + (1,))[:3]
        out = out.after((k, k), (s, s), (d, d))
    return out


class Window(NamedTuple):
    """Sliding window of a conv/pool op, one entry per spatial axis (L, HW or DHW)."""

    kind: str  # "conv", "pool", "adaptive" (bins from the sizes) or "transposed"
    kernel: tuple
    stride: tuple
    padding: tuple
    dilation: tuple
    ceil_mode: bool = False


def _ntuple(v, n: int, default) -> tuple[int, ...]:
    if v is None or (isinstance(v, (list, tuple)) and len(v) == 0):
        v = default
    if isinstance(v, (list, tuple)):
        return tuple(int(x) for x in v) if len(v) == n else (int(v[0]),) * n
    return (int(v),) * n


def widest_bin(n: int, o: int) -> int:
    """Widest bin of PyTorch's adaptive pooling of n values into o: bin i covers
    [floor(i n / o), ceil((i + 1) n / o))."""
    return max(-(-(i + 1) * n // o) - i * n // o for i in range(o))


def _op(func) -> str:
    return (func.__name__ if hasattr(func, "__name__") else str(func)).split(".")[0]


def window(func, args) -> Window | None:
    """The sliding window of a conv / pool / adaptive-pool aten op, else None."""
    op = _op(func)
    x = args[0] if args else None
    if not isinstance(x, torch.Tensor) or x.ndim < 3:
        return None
    n = x.ndim - 2  # spatial axes
    if op == "convolution":
        w = args[1]
        k = tuple(int(v) for v in w.shape[2:])
        return Window("transposed" if args[6] else "conv", k, _ntuple(args[3], n, 1),
                      _ntuple(args[4], n, 0), _ntuple(args[5], n, 1))
    if op in ("max_pool2d", "max_pool2d_with_indices", "avg_pool2d", "max_pool3d",
              "max_pool3d_with_indices", "avg_pool3d"):
        k = _ntuple(args[1], n, 1)
        s = _ntuple(args[2] if len(args) > 2 else None, n, k)
        p = _ntuple(args[3] if len(args) > 3 else 0, n, 0)
        if op.startswith("avg"):
            d, ceil = (1,) * n, bool(args[4]) if len(args) > 4 else False
        else:
            d = _ntuple(args[4] if len(args) > 4 else 1, n, 1)
            ceil = bool(args[5]) if len(args) > 5 else False
        return Window("pool", k, s, p, d, ceil)
    if op in ("_adaptive_avg_pool2d", "adaptive_max_pool2d", "adaptive_avg_pool2d",
              "_adaptive_avg_pool3d", "adaptive_max_pool3d", "adaptive_avg_pool3d"):
        sizes, outs = [int(v) for v in x.shape[2:]], _ntuple(args[1], n, 1)
        k = tuple(widest_bin(i, o) for i, o in zip(sizes, outs))
        s = tuple(_frac(i, o) for i, o in zip(sizes, outs))  # mean distance between bins
        return Window("adaptive", k, s, (0,) * n, (1,) * n)
    return None


def _frac(a: int, b: int) -> int | Fraction:
    f = Fraction(a, b)
    return f.numerator if f.denominator == 1 else f


def _resample_taps(op: str) -> int | None:
    """Input pixels each output of an interpolation reads (per axis); None if not tracked."""
    if op.endswith("1d") or op.endswith("_aa"):  # no H x W grid / scale-dependent support
        return None
    if "nearest" in op:
        return 1
    return 4 if "bicubic" in op else 2


def propagate(func, args, inputs: list[tuple[torch.Tensor, RF | Node]], out: torch.Tensor):
    """Field (RF or Node) of `out` = func(*args) given the fields of its tensor inputs."""
    base = merge(rf for _, rf in inputs)
    op = _op(func)
    x = args[0] if args and isinstance(args[0], torch.Tensor) else None
    src = merge(rf for t, rf in inputs if t is x)
    win = window(func, args)
    if win is not None:
        if len(win.kernel) < 2 or src.na:
            return RF.NA
        k, s, d, p = win.kernel[-2:], win.stride[-2:], win.dilation[-2:], win.padding[-2:]
        if win.kind == "transposed":
            if s != (1, 1):
                return _upsampled(src, "transposed", tuple(zip(k, s, d)),
                                  tuple(Fraction(1, v) for v in s))
            p = tuple((kk - 1) * dd - pp for kk, dd, pp in zip(k, d, p))  # output i reads i - p..
        if win.kind == "adaptive" and any(isinstance(v, Fraction) for v in s):
            sizes, outs = x.shape[-2:], out.shape[-2:]
            return _upsampled(src, "adaptive", tuple(zip(map(int, sizes), map(int, outs))), s)
        return src.after(k, s, d, p)
    if op in UNTRACKED_OPS:
        return RF.NA
    if op in PAD_OPS and x is not None and x.ndim >= 4:  # pad list: W's (left, right), H's
        pad = [int(v) for v in args[1]] + [0, 0, 0, 0]
        return src.shifted(pad[2], pad[0])
    if op == "slice" and x is not None and x.ndim >= 4 and int(args[1]) % x.ndim >= x.ndim - 2:
        return _sliced(src, x, args)
    if op.startswith(("upsample_", "_upsample_")) and x is not None:
        taps = _resample_taps(op)
        if taps is None:
            return RF.NA
        q = tuple(Fraction(int(i), int(o)) for i, o in zip(x.shape[-2:], out.shape[-2:]))
        return _upsampled(src, "resample", tuple((v, taps) for v in q), q)
    if op == "pixel_shuffle":  # r x r outputs per input pixel
        q = Fraction(1, int(args[1]))
        return _upsampled(src, "resample", ((q, 1), (q, 1)), (q, q))
    if op == "pixel_unshuffle":  # an r x r block per output, like a k=r, s=r window
        r = int(args[1])
        return src.after((r, r), (r, r))
    maps = [(t, rf) for t, rf in inputs if t.ndim >= 4]  # tensors with an H x W grid
    if maps:
        h, w = maps[0][0].shape[-2:]
        collapsed = out.ndim < 3 or (tuple(out.shape[-2:]) == (1, 1) and h * w > 1)
        if collapsed:  # mean over H, W or flatten before an FC layer: sees everything
            return merge(rf if rf.na else rf.whole(*t.shape[-2:]) for t, rf in maps)
    return base
