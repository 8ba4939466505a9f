"""Filters and convolution (seed 001, "Filters and Convolution").

An image is a function f(x, y) -> intensity (a colour image: one such function per channel).
A filter is a neighbourhood operation: slide a kernel over the image, multiply each kernel
value by the pixel under it and sum. That is *cross-correlation*, which is what the
lectures' worked example computes ([[0,1,2],[3,4,5],[6,7,8]] with [[0,1],[2,3]] gives
[[19,25],[37,43]]) and what a CNN's conv layer computes. True convolution flips the kernel
first; `filter2d(..., flip=True)` does that.

The work is done by torch (`F.pad`, `F.conv2d`); `reference_conv2d` is the explicit loop
the lectures describe, kept for teaching and as the tests' oracle. Output sizes and the
"does not fit" error come from `cnnzoo.analysis.arithmetic`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cnnzoo.analysis.arithmetic import conv_output_size
from cnnzoo.errors import CnnzooError, ShapeError
from cnnzoo.utils.io import atomic_path

PAD_MODES = ("zeros", "constant", "reflect", "replicate", "circular")


class KernelError(CnnzooError):
    """An unknown kernel name or an unreadable / malformed kernel file."""


class ImageError(CnnzooError):
    """An image file that is missing, unreadable, or cannot be written."""


# ---------------------------------------------------------------------------- kernel bank

def _t(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def gaussian(sigma: float = 1.0, size: int | None = None) -> torch.Tensor:
    """Sampled 2-D Gaussian, normalised to sum 1; size defaults to 2*ceil(3*sigma) + 1."""
    if not sigma > 0:
        raise KernelError(f"gaussian sigma must be > 0, got {sigma!r}")
    size = size if size is not None else 2 * math.ceil(3 * sigma) + 1
    if size < 1:
        raise KernelError(f"gaussian size must be >= 1, got {size!r}")
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    k = torch.outer(g, g)
    return (k / k.sum()).float()


def box(n: int = 3) -> torch.Tensor:
    """n x n mean filter."""
    if n < 1:
        raise KernelError(f"box size must be >= 1, got {n!r}")
    return torch.full((n, n), 1.0 / (n * n))


# The seed's blur table, exactly: (1/273) * these integers.
GAUSSIAN5_TABLE = [[1, 4, 7, 4, 1], [4, 16, 26, 16, 4], [7, 26, 41, 26, 7],
                   [4, 16, 26, 16, 4], [1, 4, 7, 4, 1]]

# name -> (factory, one-line description). Factories return a fresh float32 [kh, kw] tensor.
KERNELS: dict[str, tuple[Callable[..., torch.Tensor], str]] = {
    "identity": (lambda: _t([[0, 0, 0], [0, 1, 0], [0, 0, 0]]), "returns the image unchanged"),
    "sobel-x": (lambda: _t([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]),
                "horizontal gradient: vertical edges (seed 001)"),
    "sobel-y": (lambda: _t([[1, 2, 1], [0, 0, 0], [-1, -2, -1]]),
                "vertical gradient: horizontal edges (seed 001)"),
    "prewitt-x": (lambda: _t([[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]]), "horizontal gradient"),
    "prewitt-y": (lambda: _t([[1, 1, 1], [0, 0, 0], [-1, -1, -1]]), "vertical gradient"),
    "laplacian": (lambda: _t([[0, 1, 0], [1, -4, 1], [0, 1, 0]]), "second derivative: edges"),
    "gaussian5": (lambda: _t(GAUSSIAN5_TABLE) / 273, "5x5 blur, (1/273)*table (seed 001)"),
    "gaussian": (gaussian, "gaussian:SIGMA[:SIZE] sampled Gaussian blur (default 1, 7x7)"),
    "box": (box, "box:N mean filter (default 3x3)"),
    "sharpen": (lambda: _t([[0, -1, 0], [-1, 5, -1], [0, -1, 0]]), "identity + laplacian"),
    "emboss": (lambda: _t([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]), "relief look"),
}


# Not one kernel but a pair: the edge strength sqrt(Gx^2 + Gy^2) of its two responses
# (`gradient_magnitude`), what the lectures mean by Sobel edge detection.
PAIRS: dict[str, tuple[tuple[str, str], str]] = {
    "sobel": (("sobel-x", "sobel-y"), "edge strength sqrt(Gx^2 + Gy^2) of sobel-x, sobel-y "
              "(seed 001)"),
}


def list_kernels() -> list[str]:
    return list(KERNELS)


def get_kernel(spec: str) -> torch.Tensor:
    """A kernel from the bank by name; "gaussian:SIGMA[:SIZE]" and "box:N" take arguments."""
    name, *args = str(spec).split(":")
    if name in PAIRS:
        raise KernelError(f"{name!r} is the pair {' and '.join(PAIRS[name][0])}, not one "
                          "kernel: use gradient_magnitude")
    if name not in KERNELS:
        names = ", ".join([*KERNELS, *PAIRS])
        raise KernelError(f"unknown kernel {spec!r}; choose from {names}")
    factory = KERNELS[name][0]
    try:
        if name == "gaussian" and len(args) <= 2:
            vals = [float(args[0])] if args else []
            vals += [int(args[1])] if len(args) == 2 else []
        elif name == "box" and len(args) <= 1:
            vals = [int(a) for a in args]
        elif not args:
            vals = []
        else:
            raise ValueError
    except ValueError:
        raise KernelError(f"bad kernel arguments in {spec!r}; see `cnnzoo filter --list`") from None
    return factory(*vals)


def load_kernel_file(path: str | os.PathLike) -> torch.Tensor:
    """A kernel written as whitespace-separated rows of numbers; '#' starts a comment."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        why = getattr(e, "strerror", None) or e
        raise KernelError(f"cannot read kernel file {path}: {why}") from e
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            row = [float(v) for v in line.split()]
        except ValueError:
            raise KernelError(f"kernel file {path} line {n}: not numbers: {line!r}") from None
        if not all(math.isfinite(v) for v in row):
            raise KernelError(f"kernel file {path} line {n}: values must be finite")
        if rows and len(row) != len(rows[0]):
            raise KernelError(f"kernel file {path} line {n}: {len(row)} values, "
                              f"expected {len(rows[0])} like the first row")
        rows.append(row)
    if not rows:
        raise KernelError(f"kernel file {path} holds no numbers")
    return _t(rows)


# ---------------------------------------------------------------------------- padding

def _pad_amounts(p) -> tuple[int, int]:
    ph, pw = (p, p) if isinstance(p, int) else tuple(p)
    if min(ph, pw) < 0:
        raise ShapeError(f"padding must be >= 0, got {p!r}")
    return ph, pw


def _as4d(img: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    """[H,W], [C,H,W] or [B,C,H,W] -> ([N,1,H,W], original shape): every channel alone."""
    if img.dim() not in (2, 3, 4):
        raise ShapeError(f"image must be [H,W], [C,H,W] or [B,C,H,W], got shape "
                         f"{tuple(img.shape)}")
    if not img.is_floating_point():
        img = img.float()
    return img.reshape(-1, 1, *img.shape[-2:]), tuple(img.shape)


def pad(img: torch.Tensor, p: int | tuple[int, int], mode: str = "zeros",
        value: float = 0.0) -> torch.Tensor:
    """Pad the last two axes by p pixels (or (ph, pw)) on each side (the border problem).

    zeros / constant (with `value`) / reflect (mirror without repeating the edge:
    [1,2,3] -> [2,1,2,3,2]) / replicate (repeat the edge) / circular (wrap around).
    """
    if mode not in PAD_MODES:
        raise ShapeError(f"unknown pad mode {mode!r}; choose from {', '.join(PAD_MODES)}")
    ph, pw = _pad_amounts(p)
    x, shape = _as4d(img)
    h, w = shape[-2:]
    if mode == "reflect" and (ph >= h or pw >= w) or mode == "circular" and (ph > h or pw > w):
        raise ShapeError(f"{mode} padding of {ph}x{pw} needs a larger image than {h}x{w}")
    if mode in ("zeros", "constant"):
        out = F.pad(x, (pw, pw, ph, ph), mode="constant", value=value if mode == "constant" else 0)
    else:
        out = F.pad(x, (pw, pw, ph, ph), mode=mode)
    return out.reshape(*shape[:-2], h + 2 * ph, w + 2 * pw)


_pad = pad  # filter2d's `pad` argument (the lectures' P) shadows the function inside it


# ---------------------------------------------------------------------------- filtering

def _kernel(kernel, like: torch.Tensor) -> torch.Tensor:
    k = torch.as_tensor(kernel, dtype=like.dtype, device=like.device)
    if k.dim() != 2 or k.numel() == 0:
        raise ShapeError(f"kernel must be a non-empty 2-D [kh, kw] array, got shape "
                         f"{tuple(k.shape)}")
    return k


def output_shape(h: int, w: int, kh: int, kw: int, stride: int = 1, pad: int = 0,
                 *, strict: bool = True) -> tuple[int, int]:
    """(H', W') = ((H - F + 2P)/S + 1) per axis; ShapeError "does not fit" otherwise."""
    ph, pw = _pad_amounts(pad)
    return (conv_output_size(h, kh, stride, ph, strict=strict, what="kernel"),
            conv_output_size(w, kw, stride, pw, strict=strict, what="kernel"))


def filter2d(img: torch.Tensor, kernel, *, stride: int = 1, pad: int | tuple[int, int] = 0,
             pad_mode: str = "zeros", value: float = 0.0, flip: bool = False,
             strict: bool = True) -> torch.Tensor:
    """Slide a 2-D kernel over every channel of an [H,W], [C,H,W] or [B,C,H,W] image.

    Cross-correlation like a CNN layer (flip=True: true convolution). Output has the input's
    rank with H', W' = (W - F + 2P)/S + 1; strict=True (the lectures' rule) refuses strides
    that do not tile the padded image, strict=False floors like PyTorch.
    """
    x, shape = _as4d(img)
    k = _kernel(kernel, x)
    if flip:
        k = k.flip(-1, -2)
    oh, ow = output_shape(shape[-2], shape[-1], *k.shape, stride, pad, strict=strict)
    x = _pad(x, pad, pad_mode, value)
    out = F.conv2d(x, k[None, None], stride=stride)
    return out.reshape(*shape[:-2], oh, ow)


def reference_conv2d(img: torch.Tensor, kernel, *, stride: int = 1, pad: int = 0,
                     pad_mode: str = "zeros", flip: bool = False) -> torch.Tensor:
    """The lectures' loop on one [H,W] image: each kernel value times its pixel, summed.

    Written out by hand on purpose (slow): it is what filter2d must equal.
    """
    if img.dim() != 2:
        raise ShapeError(f"reference_conv2d takes one [H,W] image, got {tuple(img.shape)}")
    x = _pad(img.double(), pad, pad_mode)
    k = torch.as_tensor(kernel, dtype=torch.float64)
    if flip:
        k = k.flip(-1, -2)
    kh, kw = k.shape
    oh, ow = output_shape(img.shape[0], img.shape[1], kh, kw, stride, pad, strict=False)
    out = torch.zeros(oh, ow, dtype=torch.float64)
    for i in range(oh):
        for j in range(ow):
            total = 0.0
            for u in range(kh):
                for v in range(kw):
                    total += float(k[u, v]) * float(x[i * stride + u, j * stride + v])
            out[i, j] = total
    return out.to(img.dtype if img.is_floating_point() else torch.float32)


def gradient_magnitude(img: torch.Tensor, pad_mode: str = "reflect", *, pad=1,
                       pair: str = "sobel", **filter_kw) -> torch.Tensor:
    """Edge strength sqrt(gx^2 + gy^2) from a kernel pair (default Sobel), each response
    computed by `filter2d` (`filter_kw`: stride, flip, ...). Same size as the input by default
    (pad 1, reflect)."""
    if pair not in PAIRS:
        raise KernelError(f"unknown kernel pair {pair!r}; choose from {', '.join(PAIRS)}")
    gx, gy = (filter2d(img, get_kernel(k), pad=pad, pad_mode=pad_mode, **filter_kw)
              for k in PAIRS[pair][0])
    return torch.sqrt(gx**2 + gy**2)


# ---------------------------------------------------------------------------- image files

def load_image(path: str | os.PathLike, mode: str | None = None) -> torch.Tensor:
    """Read an image as float [C,H,W] in 0..1 (C=1 grayscale, 3 RGB).

    mode "L" or "RGB" forces one; None keeps grayscale images grayscale, anything else RGB.
    """
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image {path} does not exist" if not path.exists()
                         else f"image {path} is not a file")
    try:
        with Image.open(path) as im:
            im.load()
            if mode is None:
                mode = "L" if im.mode in ("1", "L", "LA", "I", "I;16", "F") else "RGB"
            arr = np.asarray(im.convert(mode), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        # Pillow raises UnidentifiedImageError (an OSError) or truncation errors here
        raise ImageError(f"cannot read image {path}: {e}") from e
    t = torch.from_numpy(arr.copy()).float() / 255.0
    return t[None] if t.dim() == 2 else t.permute(2, 0, 1).contiguous()


def to_display(img: torch.Tensor, how: str = "clip") -> torch.Tensor:
    """Map a filter output into 0..1 for viewing.

    clip: values as they are (blur, sharpen); signed: 0 -> mid-grey, +-max|v| -> white/black
    (edge responses keep their sign); abs: |v| / max|v|; minmax: stretch min..max.
    """
    x = img.float()
    if how == "clip":
        return x.clamp(0, 1)
    if how == "signed":
        m = x.abs().max().clamp_min(1e-12)
        return x / (2 * m) + 0.5
    if how == "abs":
        return x.abs() / x.abs().max().clamp_min(1e-12)
    if how == "minmax":
        lo, hi = x.min(), x.max()
        return (x - lo) / (hi - lo).clamp_min(1e-12)
    raise ValueError(f"unknown display mapping {how!r}")


def save_image(img: torch.Tensor, path: str | os.PathLike) -> None:
    """Write float [C,H,W] / [H,W] in 0..1 (clipped) as 8-bit grayscale or RGB, atomically."""
    from PIL import Image

    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        raise ImageError(f"cannot write {path}: unknown image extension {path.suffix!r} "
                         f"(use .png, .jpg, ...)")
    x = img.detach().float().cpu()
    if x.dim() == 3 and x.shape[0] == 1:
        x = x[0]
    if x.dim() == 3 and x.shape[0] == 3:
        x = x.permute(1, 2, 0)
    elif x.dim() != 2:
        raise ShapeError(f"save_image takes [H,W], [1,H,W] or [3,H,W], got {tuple(img.shape)}")
    arr = (x.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    try:
        with atomic_path(path) as tmp:
            Image.fromarray(arr).save(tmp, format=fmt)
    except OSError as e:
        raise ImageError(f"cannot write {path}: {e}") from e
