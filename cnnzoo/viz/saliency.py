"""Where in the image a class score comes from.

- "grad": gradient saliency (Simonyan, Vedaldi & Zisserman 2014): |d score / d pixel|, the
  largest over the colour channels.
- "gradcam": Grad-CAM (Selvaraju et al. 2017): the layer's maps A_k weighted by the mean
  gradient of the score over each map, ReLU(sum_k alpha_k A_k).
- "gradcam++": Grad-CAM++ (Chattopadhay et al. 2018): per-position weights
  g^2 / (2 g^2 + sum(A) g^3) on the positive gradients g (the closed form for an exponential
  of the score, as in the paper and pytorch-grad-cam).

A CAM is brought to the image by the receptive-field geometry of its layer: each unit is
placed at the centre of its field (start + i * jump + (rf - 1) / 2) and the map is
interpolated bilinearly between those centres. Where the layer's grid tiles the image this
is exactly bilinear resizing (align_corners=False); where it does not (LeNet-5 pads 28x28
to 32x32 in its forward) the map stays aligned with what each unit sees.

`sanity_check` is the model-randomisation test of Adebayo et al. 2018 ("Sanity checks for
saliency maps"): the same map for the same network with random weights. A method whose
map barely changes (high rank correlation) shows the image, not what the network learned.

Forward hooks on the chosen layer, so every zoo model works as built: the output passed on
is a clone (an in-place activation after the layer would otherwise overwrite the maps being
explained) and auxiliary heads are ignored (`main_logits`).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnzoo.errors import CnnzooError, ShapeError
from cnnzoo.models.backbone import get_layer
from cnnzoo.models.layers import main_logits
from cnnzoo.utils.io import atomic_path
from cnnzoo.viz.common import check_index, default_layer

METHODS = ("grad", "gradcam", "gradcam++")


@dataclass
class Saliency:
    """Maps for a batch (or one image: no batch dimension anywhere)."""

    method: str
    layer: str | None  # the CAM layer (None for "grad")
    target: torch.Tensor  # class explained, [B] (or a 0-d tensor)
    score: torch.Tensor  # its logit
    predicted: torch.Tensor  # the top class
    map: torch.Tensor  # [B, H, W] at the input's resolution, each map scaled to max 1
    raw: torch.Tensor  # unscaled: |grad| [B, H, W], or the CAM at the layer's grid [B, h, w]

    def __getitem__(self, i: int) -> Saliency:
        return Saliency(self.method, self.layer, self.target[i], self.score[i],
                        self.predicted[i], self.map[i], self.raw[i])


class _Capture:
    """Keeps `layer`'s output of the first call and passes a clone on."""

    def __init__(self, module: nn.Module, name: str):
        self.name, self.out = name, None
        self.handle = module.register_forward_hook(self)

    def __call__(self, _module, _inputs, out):
        if self.out is not None:
            return None
        if not torch.is_tensor(out):
            raise ShapeError(f"layer {self.name} returns {type(out).__name__}, not a tensor")
        self.out = out
        return out.clone()


def _scale(m: torch.Tensor) -> torch.Tensor:
    """Each map divided by its own maximum (a map of zeros stays zeros)."""
    top = m.flatten(1).amax(1).clamp_min(1e-30).view(-1, *[1] * (m.ndim - 1))
    return m / top


def _to_image(cam: torch.Tensor, model: nn.Module, layer: str, input_size) -> torch.Tensor:
    """A [B, h, w] map on the layer's grid as [B, H, W] on the image, by bilinear
    interpolation between the units' receptive-field centres (clamped at the borders)."""
    from cnnzoo.analysis import layer_field

    size_hw = tuple(input_size[-2:])
    try:
        rows, cols = layer_field(model, layer, input_size).centres()
    except CnnzooError:  # no closed-form field (upsampling), or no meta pass: resizing
        return F.interpolate(cam[:, None], size=size_hw, mode="bilinear",
                             align_corners=False)[:, 0]
    h, w = cam.shape[-2:]

    def coords(centres, n, size):
        step = float(centres[1] - centres[0]) if n > 1 else 1.0
        u = (torch.arange(size, dtype=torch.float32) - float(centres[0])) / step
        return 2 * u / (n - 1) - 1 if n > 1 else torch.zeros(size)

    gy, gx = coords(rows, h, size_hw[0]), coords(cols, w, size_hw[1])
    grid = torch.stack(torch.broadcast_tensors(gx[None, :], gy[:, None]), -1)
    grid = grid.to(cam).expand(cam.shape[0], -1, -1, -1)
    return F.grid_sample(cam[:, None], grid, mode="bilinear", padding_mode="border",
                         align_corners=True)[:, 0]


def saliency(model: nn.Module, x: torch.Tensor, *, method: str = "gradcam",
             target=None, layer: str | None = None) -> Saliency:
    """Saliency of class `target` (int, [B] ints, or None: the predicted class) for the
    normalised images x ([C, H, W] or [B, C, H, W]). `layer`: the CAM layer (default:
    `default_layer`, the last stage with a spatial map). The model is used in eval mode."""
    if method not in METHODS:
        raise CnnzooError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    single = x.ndim == 3
    x = (x[None] if single else x).detach().clone().requires_grad_(True)
    cam = method != "grad"
    if cam:
        layer = layer or default_layer(model, tuple(x.shape[1:]))
        capture = _Capture(get_layer(model, layer), layer)
    was = model.training
    model.eval()
    try:
        with torch.enable_grad():
            logits = main_logits(model(x))
            n_classes = logits.shape[1]
            if target is None:
                target = logits.argmax(1)
            else:
                target = torch.as_tensor(target, device=logits.device).long().expand(len(x))
                for t in target.unique().tolist():
                    check_index(t, n_classes, "class", "the model", "classes")
            score = logits.gather(1, target[:, None])[:, 0]
            wrt = capture.out if cam else x
            if cam and wrt is None:
                raise CnnzooError(f"layer {layer} did not run in the forward (eval mode)")
            if cam and wrt.ndim != 4:
                raise ShapeError(f"Grad-CAM needs a layer with feature maps; layer {layer} "
                                 f"outputs {list(wrt.shape[1:])}")
            (grad,) = torch.autograd.grad(score.sum(), wrt)
    finally:
        if cam:
            capture.handle.remove()
        model.train(was)
    if not cam:
        raw = grad.abs().amax(1)
        full = raw
    else:
        a = wrt.detach()
        if method == "gradcam":
            weights = grad.mean((2, 3), keepdim=True)
        else:
            g2, g3 = grad**2, grad**3
            denom = 2 * g2 + a.sum((2, 3), keepdim=True) * g3
            alpha = torch.where(grad != 0, g2 / torch.where(denom != 0, denom, 1e-30), 0.0)
            weights = (alpha * grad.clamp_min(0)).sum((2, 3), keepdim=True)
        raw = (weights * a).sum(1).clamp_min(0)
        full = _to_image(raw, model, layer, tuple(x.shape[1:]))
    out = Saliency(method, layer if cam else None, target.detach(), score.detach(),
                   logits.argmax(1).detach(), _scale(full.detach()), raw.detach())
    return out[0] if single else out


def randomised_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of `model` with every layer re-initialised at random (its `reset_parameters`;
    other weight tensors drawn N(0, 1/fan_in)): Adebayo et al.'s full randomisation."""
    net = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for m in net.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
                continue
            for p in m.parameters(recurse=False):
                if p.ndim > 1:
                    p.copy_(torch.randn(p.shape) / p[0].numel() ** 0.5)
    return net


def _ranks(v: torch.Tensor) -> torch.Tensor:
    """Ranks 1..n of a 1-D tensor, ties given their average rank (as scipy's rankdata)."""
    _, inverse, counts = torch.unique(v, sorted=True, return_inverse=True,
                                         return_counts=True)
    ends = counts.cumsum(0).double()
    return (ends - (counts.double() - 1) / 2)[inverse]


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's rank correlation of two maps (flattened); nan when one is constant."""
    ra, rb = _ranks(a.flatten().double()), _ranks(b.flatten().double())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = (ra.norm() * rb.norm()).item()
    return float((ra @ rb).item() / den) if den > 0 else float("nan")


@dataclass
class SanityCheck:
    trained: Saliency
    randomised: Saliency
    spearman: float  # rank correlation of the two maps (one image)


def sanity_check(model: nn.Module, x: torch.Tensor, *, method: str = "gradcam", target=None,
                 layer: str | None = None, seed: int = 0) -> SanityCheck:
    """The map for one image x [C, H, W] with the trained and with randomised weights (the
    same class), and their Spearman rank correlation (Adebayo et al. 2018)."""
    if x.ndim != 3:
        raise ShapeError("sanity_check takes one image [C, H, W]")
    trained = saliency(model, x, method=method, target=target, layer=layer)
    rand = saliency(randomised_copy(model, seed), x, method=method,
                    target=int(trained.target), layer=trained.layer)
    return SanityCheck(trained, rand, rank_correlation(trained.map, rand.map))


def _heat(ax, m: torch.Tensor, title: str) -> None:
    ax.imshow(m.numpy(), cmap="inferno", vmin=0, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def plot_saliency(image: torch.Tensor, s: Saliency, out_png: str | os.PathLike, *,
                  classes: list[str] | None = None, sanity: SanityCheck | None = None,
                  title: str = "") -> Path:
    """The image, the map, the map over the image and, with a sanity check, the map of
    the randomised network with the rank correlation. Atomic PNG."""
    from matplotlib.figure import Figure

    def name(k):
        k = int(k)
        return f"{classes[k]} ({k})" if classes and 0 <= k < len(classes) else str(k)

    panels = 4 if sanity else 3
    fig = Figure(figsize=(3.1 * panels, 3.7), layout="constrained")
    axes = fig.subplots(1, panels)
    img = image.detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy()
    grey = img.shape[2] == 1
    img = img[..., 0] if grey else img
    axes[0].imshow(img, cmap="gray", vmin=0, vmax=1)
    axes[0].set_title(f"input; predicted {name(s.predicted)}", fontsize=9)
    axes[0].set_axis_off()
    what = {"grad": "|gradient|", "gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++"}[s.method]
    where = f" at {s.layer}" if s.layer else ""
    _heat(axes[1], s.map.cpu(), f"{what}{where}")
    axes[2].imshow(img, cmap="gray", vmin=0, vmax=1)
    axes[2].imshow(s.map.cpu().numpy(), cmap="inferno", alpha=0.55, vmin=0, vmax=1)
    axes[2].set_title("over the image", fontsize=9)
    axes[2].set_axis_off()
    if sanity:
        rho = sanity.spearman
        _heat(axes[3], sanity.randomised.map.cpu(),
              f"random weights: rank corr. {'n/a' if np.isnan(rho) else f'{rho:.2f}'}")
    fig.suptitle(f"{title + ': ' if title else ''}{what} for class {name(s.target)} "
                 f"(logit {float(s.score):.3g})", fontsize=10)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(out_png)


@dataclass
class RunSaliency:
    model: str
    image: torch.Tensor  # float [C, H, W] in 0..1, as the model saw it (before normalising)
    saliency: Saliency
    sanity: SanityCheck | None
    classes: list[str] | None


def run_saliency(run_dir: str | os.PathLike, image_path: str | os.PathLike, *,
                 method: str = "gradcam", target: int | None = None, layer: str | None = None,
                 sanity: bool = False, seed: int = 0, which: str = "best") -> RunSaliency:
    """`saliency` (and with `sanity`, `sanity_check`) of a run's model for one image file."""
    from cnnzoo.viz.common import load_run, normalise, read_run_image

    if method not in METHODS:
        raise CnnzooError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    model, config = load_run(run_dir, which=which)
    if target is not None:
        check_index(target, config["num_classes"], "class", "the model", "classes")
    if layer is not None:
        get_layer(model, layer)
    img = read_run_image(image_path, config)
    x = normalise(img, config)
    if sanity:
        check = sanity_check(model, x, method=method, target=target, layer=layer, seed=seed)
        s = check.trained
    else:
        check, s = None, saliency(model, x, method=method, target=target, layer=layer)
    return RunSaliency(config["model"], img, s, check, config.get("classes"))
