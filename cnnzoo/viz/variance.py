"""Activation variance layer by layer (lecture seed 001, "Monitoring the learning process", 4:
the "bad" and "good" initialisation tables).

With weights drawn N(0, 0.01^2), each tanh layer of a 500-wide net multiplies the variance
by about 500 * 1e-4 = 0.05, so it vanishes within a few layers; drawn N(0, 1/fan_in)
(Xavier, the form the lecture uses) or N(0, 2/fan_in) (He, for ReLU) it holds. Two sources:

- a trained run's RUN/metrics.jsonl: the trainer's monitor records, each epoch, the variance
  of every conv / linear and activation layer's output on a fixed probe batch ("act_var");
- an untrained network (a zoo model or the lecture's plain 10-layer net) re-initialised
  with `init_weights_` and run on N(0, 1) input, measured by the same monitor code.

A network is run in eval mode, as the monitor runs it: a fresh BatchNorm then is the identity
(running mean 0, variance 1), so the picture shows what the initialisation alone does.
"""

from __future__ import annotations

import copy
import math
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from cnnzoo.errors import CnnzooError
from cnnzoo.utils.io import atomic_path

INITS = ("small", "xavier", "he")
VAR_MIN = 1e-6  # below this a layer's activations have vanished (the monitor warns)
_ACTS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.Tanh, nn.Sigmoid, nn.SiLU)
SMALL_STD = 0.01  # the lecture's "W = 0.01 * randn(fan_in, fan_out)"


@torch.inference_mode()
def activation_stats(model: nn.Module, x: torch.Tensor) -> tuple[dict, dict]:
    """(variance, zero fraction) of each conv/linear and activation layer's output on `x`."""
    var, zeros, hooks = {}, {}, []

    def hook(name, is_act):
        def fn(_m, _inp, out):
            if not torch.is_tensor(out):
                return
            o = out.detach().float()
            var[name] = float(o.var())
            if is_act:
                zeros[name] = float((o == 0).float().mean())
        return fn

    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            hooks.append(m.register_forward_hook(hook(name, False)))
        elif isinstance(m, _ACTS):
            hooks.append(m.register_forward_hook(hook(name, True)))
    modes = {m: m.training for m in model.modules()}  # e.g. frozen BatchNorm stays in eval
    model.eval()
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
        for m, training in modes.items():
            m.training = training
    return var, zeros


@dataclass
class LayerVariance:
    """Variance per layer for one or more series (epochs of a run, or initialisations)."""

    title: str
    layers: list[str]
    series: dict[str, list[float]]  # label -> variance per layer (nan: not recorded)


def init_weights_(model: nn.Module, init: str, *, seed: int = 0) -> nn.Module:
    """Re-draw every conv / linear weight in place: "small" N(0, 0.01^2), "xavier"
    N(0, 1/fan_in), "he" N(0, 2/fan_in); biases 0. Other parameters are left alone."""
    if init not in INITS:
        raise CnnzooError(f"--init must be one of {', '.join(INITS)}, got {init!r}")
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for m in model.modules():
            if not isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)):
                continue
            fan_in = m.weight[0].numel()
            std = {"small": SMALL_STD, "xavier": fan_in ** -0.5,
                   "he": (2 / fan_in) ** 0.5}[init]
            m.weight.normal_(0.0, std)
            if m.bias is not None:
                m.bias.zero_()
    return model


def plain_net(depth: int = 10, width: int = 500, init: str = "xavier", act: str = "tanh",
              seed: int = 0) -> nn.Sequential:
    """The lecture's experiment: `depth` fully-connected layers of `width` units, each
    followed by tanh (or ReLU), weights drawn by `init_weights_`."""
    acts = {"tanh": nn.Tanh, "relu": nn.ReLU}
    if act not in acts:
        raise CnnzooError(f"--act must be one of {', '.join(acts)}, got {act!r}")
    if depth < 1 or width < 1:
        raise CnnzooError(f"--depth and --width must be >= 1, got {depth} and {width}")
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for i in range(1, depth + 1):
        layers[f"fc{i}"] = nn.Linear(width, width)
        layers[f"{act}{i}"] = acts[act]()
    return init_weights_(nn.Sequential(layers), init, seed=seed)


def plain_tanh_net(depth: int = 10, width: int = 500, init: str = "xavier",
                   seed: int = 0) -> nn.Sequential:
    return plain_net(depth, width, init, "tanh", seed)


def activation_variance(model: nn.Module, x: torch.Tensor, *, activations_only: bool = True
                        ) -> dict[str, float]:
    """{layer: variance of its output on x}, in forward order: the activation layers (the
    lecture's "each layer"), or with activations_only=False the conv / linear outputs too."""
    var, zeros = activation_stats(model, x)
    return {n: v for n, v in var.items() if n in zeros} if activations_only and zeros else var


def init_variance(model: nn.Module | str, inits=INITS, *, input_size=None, batch: int = 8,
                  seed: int = 0, activations_only: bool = True, depth: int = 10,
                  width: int = 500, act: str = "tanh") -> LayerVariance:
    """Variance per layer of an untrained network under each initialisation, on N(0, 1)
    input: a zoo model (by name, or a module, which is copied; `input_size` defaults to the
    model's own) or "plain", the lecture's net (`plain_net(depth, width, act=act)`, on a
    1000 x width input as in the lecture)."""
    if isinstance(model, str) and model == "plain":
        model, input_size, batch = plain_net(depth, width, act=act), (width,), 1000
        title = f"plain {depth}-layer {act} net ({width} units)"
    elif isinstance(model, str):
        from cnnzoo.models import create_model
        from cnnzoo.models.registry import model_info

        title = model
        input_size = input_size or model_info(model).input_size
        model = create_model(model, in_chans=input_size[0])
    else:
        title = getattr(model, "model_name", type(model).__name__)
        if input_size is None:
            raise CnnzooError("init_variance of a module needs input_size")
        model = copy.deepcopy(model)
    x = torch.randn((batch, *input_size), generator=torch.Generator().manual_seed(seed))
    series, layers = {}, []
    for init in inits:
        var = activation_variance(init_weights_(model, init, seed=seed), x,
                                  activations_only=activations_only)
        layers = layers or list(var)
        series[f"init {init}"] = [var.get(n, math.nan) for n in layers]
    size = "x".join(map(str, input_size))
    return LayerVariance(f"{title}, untrained, N(0, 1) input {batch}x{size}", layers, series)


def run_variance(run_dir: str | os.PathLike, *, activations_only: bool = True
                 ) -> LayerVariance:
    """Variance per layer at each epoch end, from the monitor's records in
    RUN/metrics.jsonl (CheckpointError if the run has none)."""
    from cnnzoo.errors import CheckpointError
    from cnnzoo.viz.common import load_run
    from cnnzoo.viz.plots import read_metrics

    run_dir = Path(run_dir)
    _, config = load_run(run_dir)  # a folder that is not a run: one clear line
    epochs = [r for r in read_metrics(run_dir / "metrics.jsonl")
              if r.get("kind") == "epoch" and isinstance(r.get("act_var"), dict)]
    if not epochs:
        raise CheckpointError(f"{run_dir / 'metrics.jsonl'}: no activation variance "
                              "recorded (trained with monitor off?)")
    layers: list[str] = []
    for r in epochs:
        acts = r.get("dead_fraction") if activations_only else None
        for n in r["act_var"]:
            if n not in layers and (not acts or n in acts):
                layers.append(n)
    series = {f"epoch {r.get('epoch', i + 1)}": [float(r["act_var"].get(n, math.nan))
                                                 for n in layers]
              for i, r in enumerate(epochs)}
    return LayerVariance(f"{run_dir.name} ({config.get('model')}), monitor probe batch",
                         layers, series)


def plot_variance(v: LayerVariance, out_png: str | os.PathLike, *, title: str = "") -> Path:
    """Variance (log scale) against layer, one line per series, the monitor's "vanishing"
    threshold marked. Atomic PNG."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    n = len(v.layers)
    fig = Figure(figsize=(max(7.0, min(0.35 * n + 3, 22)), 4.8), layout="constrained")
    ax = fig.subplots()
    epochs = all(k.startswith("epoch") for k in v.series)
    cmap = colormaps["viridis"]
    for k, (label, ys) in enumerate(v.series.items()):
        ys = [y if y > 0 else math.nan for y in ys]  # log scale: 0 (a dead layer) not drawn
        color = cmap(k / max(1, len(v.series) - 1)) if epochs else f"C{k}"
        ax.plot(range(1, n + 1), ys, "o-", ms=3, lw=1.4, color=color, label=label)
    ax.axhline(VAR_MIN, color="red", lw=0.8, ls="--", label=f"vanishing (< {VAR_MIN:g})")
    ax.set_yscale("log")
    step = max(1, math.ceil(n / 40))  # at most ~40 names under the axis
    ax.set_xticks(range(1, n + 1, step), v.layers[::step], rotation=60, ha="right",
                  fontsize=7)
    ax.set_xlabel("layer (forward order)")
    ax.set_ylabel("activation variance")
    ax.grid(alpha=0.3, which="both")
    many = len(v.series) > 10
    ax.legend(fontsize=7 if many else 8, ncol=2 if many else 1)
    ax.set_title(f"{title + ': ' if title else ''}activation variance by layer\n{v.title}",
                 fontsize=10)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(out_png)
