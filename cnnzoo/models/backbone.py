"""One vocabulary on every zoo model, timm's: a body that makes features, a head that makes
class scores, and the names of the stages in between.

    feats = model.forward_features(x)           # last feature map, before global pooling
    vec = model.forward_head(feats, pre_logits=True)   # what feeds the classifier (FC7, GAP)
    logits = model.forward_head(feats)          # == model(x) in eval mode
    model.get_classifier()                      # the layer that maps features to classes
    model.reset_classifier(5)                   # a new head (aux heads too), all else kept
    model.feature_info                          # per stage: module, channels, reduction, RF
    feats = features(model, ["layer2", "layer3.1.conv2"])(x)   # any named layers, by hooks

Family classes subclass `Backbone` and define `forward_features` and `forward_head`, and set
`classifier_name` (dotted path of the final class layer), `aux_classifier_names` (the final
layers of auxiliary heads) and `stage_names` (feature stages, shallow to deep).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence

import torch
import torch.nn as nn

from cnnzoo.errors import CnnzooError, ShapeError


class UnknownLayerError(CnnzooError, KeyError):
    """A layer name the model does not have; the message lists the closest valid names."""

    def __str__(self) -> str:
        return str(self.args[0])


def get_layer(model: nn.Module, name: str) -> nn.Module:
    """`model`'s submodule called `name` (as in `named_modules()`), or UnknownLayerError."""
    modules = dict(model.named_modules())
    if name in modules and name:
        return modules[name]
    names = [n for n in modules if n]
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.4)
    if not close:  # e.g. "layer3.9" on a 6-block stage: offer the stage's own children
        parent = name.rsplit(".", 1)[0]
        close = [n for n in names if n.startswith(parent + ".") and n.count(".") ==
                 name.count(".")][:5]
    model_name = getattr(model, "model_name", type(model).__name__)
    hint = f"; closest: {', '.join(close)}" if close else ""
    stages = getattr(model, "stage_names", ())
    stage_hint = f"; stages: {', '.join(stages)}" if stages else ""
    raise UnknownLayerError(f"{model_name} has no layer {name!r}{hint}{stage_hint}")


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, new)


def _new_head(old: nn.Module, num_classes: int) -> nn.Module:
    """A freshly initialised layer like `old` (Linear or 1x1 Conv2d) with `num_classes`
    outputs, on old's device and dtype."""
    w = old.weight
    kw = dict(device=w.device, dtype=w.dtype)
    if isinstance(old, nn.Linear):
        new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None, **kw)
        if w.device.type != "meta":  # the zoo's Linear init: He fan_in (layers.init_weights)
            nn.init.kaiming_normal_(new.weight, mode="fan_in", nonlinearity="relu")
    elif isinstance(old, nn.Conv2d):
        new = nn.Conv2d(old.in_channels, num_classes, old.kernel_size, old.stride,
                        old.padding, bias=old.bias is not None, **kw)
        if w.device.type != "meta":  # SqueezeNet / NiN class convs start small
            nn.init.normal_(new.weight, 0.0, 0.01)
    else:
        raise TypeError(f"cannot reset a classifier of type {type(old).__name__}")
    if new.bias is not None and w.device.type != "meta":
        nn.init.zeros_(new.bias)
    return new


class _Analysis:
    """What the analysis code measures for models, plugged in by cnnzoo.analysis on import
    (the top-level package imports it): measuring channels, strides and receptive fields is
    the analysis code's job, and models must not import it (layers point one way)."""

    feature_info: Callable[[nn.Module], list[dict]] | None = None
    check_input: Callable[[nn.Module, tuple], None] | None = None


ANALYSIS = _Analysis()


class Backbone(nn.Module):
    """Base of every zoo network: `forward(x) = forward_head(forward_features(x))`."""

    classifier_name: str = "fc"
    aux_classifier_names: tuple[str, ...] = ()
    stage_names: tuple[str, ...] = ()
    # Smallest H = W the network takes, and the channel count; set by the family's __init__.
    min_input_size: int = 1
    in_chans: int = 3

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor):
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.get_submodule(self.classifier_name)

    def reset_classifier(self, num_classes: int) -> None:
        """A new, freshly initialised head with `num_classes` outputs (auxiliary heads too);
        every other parameter and buffer is left as it is."""
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        for name in (self.classifier_name, *self.aux_classifier_names):
            old = self.get_submodule(name)
            _replace(self, name, _new_head(old, num_classes))
        self.num_classes = num_classes

    @property
    def feature_info(self) -> list[dict]:
        """Per stage in `stage_names`: {"module", "num_chs", "reduction", "receptive_field"},
        measured by the analysis code on meta tensors at the model's default input size."""
        if ANALYSIS.feature_info is None:
            raise RuntimeError("import cnnzoo (the package) to measure feature_info")
        cached = self.__dict__.get("_feature_info")
        if cached is None:
            cached = ANALYSIS.feature_info(self)
            self.__dict__["_feature_info"] = cached
        return cached

    def check_input_size(self, input_size: Sequence[int]) -> None:
        """ShapeError, with the numbers, for a channel count or an image the stem cannot take
        (the structural check; cnnzoo.analysis.check_input also runs every layer)."""
        c, h, w = input_size
        name = getattr(self, "model_name", type(self).__name__)
        if c != self.in_chans:
            raise ShapeError(f"{name}: expects {self.in_chans}-channel input, got {c}")
        if h < self.min_input_size or w < self.min_input_size:
            hint = ("" if getattr(self, "small_input", True)
                    else " (use small_input=True for a 28/32-pixel stem)")
            raise ShapeError(f"{name}: input {h}x{w} is too small; it needs at least "
                             f"{self.min_input_size}x{self.min_input_size}{hint}")


class _Done(Exception):
    """Raised by the last hook: the layers asked for are captured, the rest is not run."""


class FeatureExtractor(nn.Module):
    """`model`'s outputs at the named layers, by forward hooks: {name: tensor}, in the order
    asked. Hooks, not tracing, so random control flow (stochastic depth, FractalNet's
    drop-path) runs as in training. The forward stops after the last layer asked for.
    Each output is cloned: an in-place activation after a hooked layer would change it.
    """

    def __init__(self, model: nn.Module, layers: Sequence[str], *, detach: bool = False):
        super().__init__()
        if isinstance(layers, str):
            layers = [layers]
        if not layers:
            raise CnnzooError("features: name at least one layer")
        self.model = model
        self.layers = list(dict.fromkeys(layers))
        self.detach = detach
        self._modules_by_name = {n: get_layer(model, n) for n in self.layers}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        got: dict[str, torch.Tensor] = {}

        def hook(name):
            def fn(_module, _inputs, out):
                if name in got:  # a module run twice keeps its first output
                    return
                if isinstance(out, torch.Tensor):
                    out = (out.detach() if self.detach else out).clone()
                got[name] = out
                if len(got) == len(self.layers):
                    raise _Done
            return fn

        handles = [m.register_forward_hook(hook(n)) for n, m in self._modules_by_name.items()]
        try:
            self.model(x)
        except _Done:
            pass
        finally:
            for h in handles:
                h.remove()
        missing = [n for n in self.layers if n not in got]
        if missing:  # e.g. an aux head in eval mode
            raise CnnzooError(f"layers {', '.join(missing)} did not run in this forward "
                              f"({'train' if self.model.training else 'eval'} mode)")
        return {n: got[n] for n in self.layers}


def features(model: nn.Module, layers: Sequence[str] | str, *, detach: bool = False
             ) -> FeatureExtractor:
    """`features(model, ["layer2", "layer3.1.conv2"])(x) -> {"layer2": ..., ...}`."""
    return FeatureExtractor(model, layers, detach=detach)
