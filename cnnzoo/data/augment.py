"""Batched data augmentation on the training device: whole-batch tensor ops, no per-image loop.

Every op takes `x` float [B,C,H,W] in 0..1 and a `torch.Generator`, so a seed reproduces a
batch exactly. Ops (the lectures' list: mirroring, random cropping, rotation / shearing /
local warping, colour shifting, AlexNet's PCA colour augmentation; plus cutout/erasing):

  flip[:P]        mirror left-right with probability P (0.5)
  crop:PAD        zero-pad by PAD and cut a random HxW window (the CIFAR recipe)
  rcrop:S         a random SxS window, no padding (AlexNet's 224 of 256)
  rrc[:MIN]       random-resized crop: area MIN..1 (0.08), aspect 3/4..4/3, resized to HxW
                  (Szegedy et al. 2015, "scale/aspect" augmentation for large images)
  rotate:DEG      rotation by U(-DEG, DEG)
  shear:DEG       horizontal shear by U(-DEG, DEG)
  warp[:MAG]      local warping: a smooth random displacement field of size MAG (0.05)
  color:S         per-image, per-channel additive shift U(-S, S)
  pca[:S]         Krizhevsky et al. 2012, sec. 4.1: add sum_i a_i * l_i * p_i, a_i ~ N(0, S),
                  p_i the RGB covariance's eigenvectors, l_i the std along p_i (see pca_basis)
  cutout:S        zero (to the batch mean) a random SxS square (DeVries & Taylor 2017)
  erase[:P]       random erasing with probability P (0.5) (Zhong et al. 2017)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F

from cnnzoo.errors import DataError

# fb.resnet.torch's ImageNet PCA (std along each component, 0..1 scale), used for
# `pca` on 3-channel data when no training set is given.
IMAGENET_EIGVAL = [0.2175, 0.0188, 0.0045]
IMAGENET_EIGVEC = [
    [-0.5675, 0.7192, 0.4009],
    [-0.5808, -0.0045, -0.8140],
    [-0.5836, -0.6948, 0.4203],
]


def _rand(g, *shape, device):
    return torch.rand(shape, generator=g, device=device)


def flip(x, g, p=0.5):
    mask = _rand(g, x.shape[0], device=x.device) < p
    return torch.where(mask[:, None, None, None], x.flip(3), x)


def _window(x, g, pad, out_hw, flip_p=0.0):
    """Random out_hw window of x zero-padded by `pad`, by index arithmetic + one gather
    (optionally mirroring the window's columns, which fuses `flip` for free)."""
    b, c, h, w = x.shape
    oh, ow = out_hw
    if pad:
        x = F.pad(x, (pad, pad, pad, pad))
    hp, wp = h + 2 * pad, w + 2 * pad
    if oh > hp or ow > wp:
        raise DataError(f"augment: crop {oh}x{ow} does not fit a {hp}x{wp} image")
    dev = x.device
    oy = (_rand(g, b, device=dev) * (hp - oh + 1)).long()
    ox = (_rand(g, b, device=dev) * (wp - ow + 1)).long()
    rows = oy[:, None] + torch.arange(oh, device=dev)
    cols = ox[:, None] + torch.arange(ow, device=dev)
    if flip_p:
        m = _rand(g, b, device=dev) < flip_p
        cols = torch.where(m[:, None], cols.flip(1), cols)
    idx = (rows[:, :, None] * wp + cols[:, None, :]).view(b, 1, oh * ow).expand(b, c, -1)
    return x.reshape(b, c, hp * wp).gather(2, idx).view(b, c, oh, ow)


def _affine(x, theta, out_hw=None, mode="bilinear"):
    b, c, h, w = x.shape
    oh, ow = out_hw or (h, w)
    grid = F.affine_grid(theta, [b, c, oh, ow], align_corners=False)
    return F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)


def _uniform(g, b, lo, hi, device):
    return lo + (hi - lo) * _rand(g, b, device=device)


def rotate(x, g, deg):
    a = _uniform(g, x.shape[0], -deg, deg, x.device) * (math.pi / 180)
    cos, sin, z = a.cos(), a.sin(), torch.zeros_like(a)
    theta = torch.stack([torch.stack([cos, -sin, z], 1), torch.stack([sin, cos, z], 1)], 1)
    return _affine(x, theta)


def shear(x, g, deg):
    t = (_uniform(g, x.shape[0], -deg, deg, x.device) * (math.pi / 180)).tan()
    one, z = torch.ones_like(t), torch.zeros_like(t)
    theta = torch.stack([torch.stack([one, t, z], 1), torch.stack([z, one, z], 1)], 1)
    return _affine(x, theta)


def random_resized_crop(x, g, min_scale, out_hw):
    b, dev = x.shape[0], x.device
    area = _uniform(g, b, min_scale, 1.0, dev)
    logr = _uniform(g, b, math.log(3 / 4), math.log(4 / 3), dev)
    sw = (area * logr.exp()).sqrt().clamp(max=1.0)  # window size as a fraction of the side
    sh = (area / logr.exp()).sqrt().clamp(max=1.0)
    cx = (_rand(g, b, device=dev) * 2 - 1) * (1 - sw)
    cy = (_rand(g, b, device=dev) * 2 - 1) * (1 - sh)
    z = torch.zeros_like(sw)
    theta = torch.stack([torch.stack([sw, z, cx], 1), torch.stack([z, sh, cy], 1)], 1)
    return _affine(x, theta, out_hw)


def warp(x, g, mag=0.05, knots=4):
    b, c, h, w = x.shape
    noise = torch.randn((b, 2, knots, knots), generator=g, device=x.device) * mag
    flow = F.interpolate(noise, size=(h, w), mode="bicubic", align_corners=False)
    eye = torch.eye(2, 3, device=x.device).expand(b, 2, 3)
    grid = F.affine_grid(eye, [b, c, h, w], align_corners=False) + flow.permute(0, 2, 3, 1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def color(x, g, s):
    b, c = x.shape[:2]
    return x + (_rand(g, b, c, 1, 1, device=x.device) * 2 - 1) * s


def pca_basis(dataset, max_images: int = 10000, seed: int = 0):
    """(eigval, eigvec) of the training set's per-pixel channel covariance (0..1 scale),
    largest first; eigval is the standard deviation along each component.

    The paper calls l_i the covariance's "eigenvalue", but a_i * l_i is added to pixel
    values, so l_i must be in pixel units: a variance would make the shift depend on the
    pixel scale (255x larger on 0..255 than on 0..1); Krizhevsky's own data provider
    (cuda-convnet2 convdata.py) multiplies the noise by `pca_stdevs`, i.e. sqrt(eigenvalue),
    as fb.resnet.torch's ImageNet values do.
    """
    imgs = dataset.sample_images(max_images, seed)
    c = imgs.shape[1]
    x = imgs.to(torch.float64).div_(255).transpose(0, 1).reshape(c, -1)
    cov = torch.cov(x)
    evals, evecs = torch.linalg.eigh(cov.reshape(c, c))
    return evals.clamp_min(0).sqrt().float().flip(0), evecs.float().flip(1)


def pca_lighting(x, g, s, eigval, eigvec):
    alpha = torch.randn((x.shape[0], len(eigval)), generator=g, device=x.device) * s
    shift = (alpha * eigval.to(x.device)) @ eigvec.to(x.device).T  # one batched matmul
    return x + shift[:, :, None, None]


def _box_mask(b, h, w, bh, bw, y0, x0, device):
    rows = torch.arange(h, device=device)
    cols = torch.arange(w, device=device)
    rm = (rows >= y0[:, None]) & (rows < (y0 + bh)[:, None])
    cm = (cols >= x0[:, None]) & (cols < (x0 + bw)[:, None])
    return (rm[:, :, None] & cm[:, None, :])[:, None]


def cutout(x, g, size):
    b, c, h, w = x.shape
    dev = x.device
    cy = (_rand(g, b, device=dev) * h).long() - size // 2  # centre anywhere, as DeVries
    cx = (_rand(g, b, device=dev) * w).long() - size // 2
    mask = _box_mask(b, h, w, size, size, cy, cx, dev)
    fill = x.mean((0, 2, 3), keepdim=True)  # ~0 after normalisation, like the paper
    return torch.where(mask, fill, x)


def erase(x, g, p=0.5, area=(0.02, 0.4), ratio=(0.3, 3.3)):
    b, c, h, w = x.shape
    dev = x.device
    s = _uniform(g, b, *area, dev) * h * w
    r = _uniform(g, b, math.log(ratio[0]), math.log(ratio[1]), dev).exp()
    bh = (s * r).sqrt().round().long().clamp(1, h)
    bw = (s / r).sqrt().round().long().clamp(1, w)
    y0 = (_rand(g, b, device=dev) * (h - bh + 1)).long()
    x0 = (_rand(g, b, device=dev) * (w - bw + 1)).long()
    on = _rand(g, b, device=dev) < p
    mask = _box_mask(b, h, w, bh, bw, y0, x0, dev) & on[:, None, None, None]
    return torch.where(mask, torch.rand(x.shape, generator=g, device=dev), x)


class Augment:
    """A parsed augmentation spec: `aug(x, generator) -> x'`; `str(aug)` gives the spec."""

    def __init__(self, steps: list[tuple[str, Callable]], spec: str, out_hw):
        self.steps, self.spec, self.out_hw = steps, spec, out_hw

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None):
        for _, fn in self.steps:
            x = fn(x, generator)
        return x

    def __repr__(self) -> str:
        return f"Augment({self.spec!r})"


def _parse(spec: str) -> list[tuple[str, list[float]]]:
    out = []
    for item in spec.replace(" ", "").split(","):
        if not item:
            continue
        name, *args = item.split(":")
        try:
            out.append((name.lower(), [float(a) for a in args]))
        except ValueError:
            raise DataError(f"--augment: bad number in '{item}'") from None
    return out


_NAMES = ("flip", "crop", "rcrop", "rrc", "rotate", "shear", "warp", "color", "pca",
          "cutout", "erase")
_NEEDS_ARG = {"crop": "crop:4", "rcrop": "rcrop:224", "rotate": "rotate:10",
              "shear": "shear:10", "color": "color:0.1", "cutout": "cutout:8"}


def _fuse_flip_crop(parsed):
    """A `flip` next to a `crop` becomes the crop's column order (same distribution, one
    gather instead of two passes): returns [(name, args, flip_p)]."""
    out, i = [], 0
    while i < len(parsed):
        name, a = parsed[i]
        nxt = parsed[i + 1] if i + 1 < len(parsed) else (None, [])
        if {name, nxt[0]} == {"flip", "crop"}:
            (_, fa), (_, ca) = sorted([parsed[i], nxt], key=lambda t: t[0] != "flip")
            out.append(("crop", ca, fa[0] if fa else 0.5))
            i += 2
        else:
            out.append((name, a, 0.0))
            i += 1
    return out


def _pca_basis_for(pca_from, channels):
    if pca_from is not None:
        eigval, eigvec = pca_basis(pca_from)
    elif channels == 3:
        eigval, eigvec = torch.tensor(IMAGENET_EIGVAL), torch.tensor(IMAGENET_EIGVEC)
    else:
        raise DataError(f"--augment: pca on {channels}-channel images needs the training "
                        "set (pca_from) to compute its colour covariance")
    if len(eigval) != channels:
        raise DataError(f"--augment: pca basis has {len(eigval)} channels, images have "
                        f"{channels}")
    return eigval, eigvec


def build_augment(spec: str | None, image_size=(32, 32), channels: int = 3, pca_from=None):
    """Parse `spec` ("flip,crop:4,pca:0.1") into an `Augment`; None or "" gives None.

    `pca_from` is the training ArrayDataset whose RGB covariance `pca` uses (else, for 3
    channels, the ImageNet basis). Ops run in the order given.
    """
    if not spec:
        return None
    h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    steps: list[tuple[str, Callable]] = []
    for name, a, fp in _fuse_flip_crop(_parse(spec)):
        if name not in _NAMES:
            raise DataError(f"--augment: unknown op '{name}' (known: {', '.join(_NAMES)})")
        if name in _NEEDS_ARG and not a:
            raise DataError(f"--augment: {name} needs an amount, e.g. {_NEEDS_ARG[name]}")
        v = a[0] if a else None
        if name == "crop":
            fn = partial(_window, pad=int(v), out_hw=(h, w), flip_p=fp)
        elif name == "rcrop":
            if int(v) > min(h, w):
                raise DataError(f"--augment: rcrop:{int(v)} is larger than the {h}x{w} images")
            h = w = int(v)
            fn = partial(_window, pad=0, out_hw=(h, w))
        elif name == "rrc":
            fn = partial(random_resized_crop, min_scale=v or 0.08, out_hw=(h, w))
        elif name == "pca":
            eigval, eigvec = _pca_basis_for(pca_from, channels)
            fn = partial(pca_lighting, s=0.1 if v is None else v, eigval=eigval, eigvec=eigvec)
        elif name == "cutout":
            fn = partial(cutout, size=int(v))
        else:
            fn = {"flip": partial(flip, p=0.5 if v is None else v),
                  "rotate": partial(rotate, deg=v), "shear": partial(shear, deg=v),
                  "warp": partial(warp, mag=v or 0.05), "color": partial(color, s=v),
                  "erase": partial(erase, p=0.5 if v is None else v)}[name]
        steps.append((name, fn))
    return Augment(steps, spec, (h, w))


TTA_VIEWS = {"none": 1, "center": 1, "flip": 2, "10crop": 10}  # views per mode


def tta_views(x: torch.Tensor, mode: str = "none", crop=None, views=None):
    """Test-time views of a batch, views-major: (views [V*B,C,h,w], V).

    none: the batch (center-cropped to `crop` if given); flip: + its mirror; 10crop:
    4 corners + centre and their mirrors (Krizhevsky et al. 2012). With crop=None, 10crop
    zero-pads by H//8 and takes HxW windows, matching the training-time `crop:H//8`.
    Average the model's outputs with `out.view(V, B, -1).mean(0)`.
    `views`: indices of the views to make (default all, in the order above), so views can
    be processed a chunk at a time: memory for the chunk, not for all V.
    """
    b, c, h, w = x.shape
    if crop is None:
        ch, cw = h, w
    else:
        ch, cw = (crop, crop) if isinstance(crop, int) else tuple(crop)
    if mode == "10crop" and crop is None:
        pad = max(1, h // 8)
        x = F.pad(x, (pad, pad, pad, pad))
        h, w = h + 2 * pad, w + 2 * pad
    if ch > h or cw > w:
        raise DataError(f"tta: crop {ch}x{cw} does not fit {h}x{w} images")
    if mode not in TTA_VIEWS:
        raise DataError(f"tta: unknown mode '{mode}' (none, center, flip, 10crop)")
    ty, tx = (h - ch) // 2, (w - cw) // 2
    corners = ([(0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw)] if mode == "10crop"
               else [])
    windows = [(y0, x0, False) for y0, x0 in corners + [(ty, tx)]]
    if mode in ("flip", "10crop"):
        windows += [(y0, x0, True) for y0, x0, _ in windows]
    out = []
    for i in range(len(windows)) if views is None else views:
        y0, x0, mirror = windows[i]
        v = x[:, :, y0 : y0 + ch, x0 : x0 + cw]
        out.append(v.flip(3) if mirror else v)
    return (out[0] if len(out) == 1 else torch.cat(out)), len(out)
