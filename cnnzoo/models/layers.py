"""Blocks shared by every family: conv-bn-act (and torchvision's BasicConv2d), concatenated
branches, drop-path, auxiliary outputs, init, the ImageNet statistics
and the TF-ported weights' input transform; and the network shapes several families share
(a named layer stack, an Inception-style trunk with auxiliary heads).

Each lives here once; the family files compose them and import nothing from each other.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import torch
import torch.nn as nn

from cnnzoo.errors import CnnzooError, ShapeError
from cnnzoo.models.backbone import Backbone

# The ImageNet statistics torchvision normalises its inputs with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TV_WEIGHTS_NOTE = ("torchvision's published ImageNet weights (ported from TensorFlow) need "
                   "transform_input=True")


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


class BasicConv2d(ConvBnAct):
    """torchvision's BasicConv2d (conv, bn eps 1e-3, ReLU) of GoogLeNet and the Inception
    nets: the same `conv`/`bn` key names."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size=1, stride=1, padding=None):
        super().__init__(in_ch, out_ch, kernel_size, stride, padding, bn_eps=1e-3)


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


def transform_input(x: torch.Tensor) -> torch.Tensor:
    """torchvision's `transform_input` for its TF-ported GoogLeNet / Inception-v3 weights.

    Undoes the ImageNet normalisation and rescales each RGB channel to [-1, 1], as the TF
    models were trained: x_c * (std_c / 0.5) + (mean_c - 0.5) / 0.5, i.e. (pixel - 0.5) / 0.5
    for pixel = x_c * std_c + mean_c.
    """
    scale = x.new_tensor([s / 0.5 for s in IMAGENET_STD]).view(1, 3, 1, 1)
    shift = x.new_tensor([(m - 0.5) / 0.5 for m in IMAGENET_MEAN]).view(1, 3, 1, 1)
    return x * scale + shift


def check_transform_input(name: str, transform: bool, in_chans: int) -> None:
    if transform and in_chans != 3:
        raise CnnzooError(f"{name}: transform_input rescales the 3 RGB channels of ImageNet-"
                          f"normalised images; it cannot be used with in_chans={in_chans}")


# --------------------------------------------------------------- network shapes, shared
def stage_ends(features: nn.Sequential, prefix: str = "features") -> tuple[str, ...]:
    """timm-style stages of a plain conv stack: the last layer at each resolution (the one
    just before each strided conv or pool) and the stack's last layer, as dotted names."""

    def strided(layer: nn.Module) -> bool:
        return any(isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d))
                   and max(m.stride if isinstance(m.stride, tuple) else (m.stride,)) > 1
                   for m in layer.modules())

    layers = list(features)
    ends = [i - 1 for i in range(1, len(layers)) if strided(layers[i])]
    return tuple(f"{prefix}.{i}" for i in (*ends, len(layers) - 1))


class FeaturesClassifier(Backbone):
    """torchvision's AlexNet / VGG layout: `features` (the conv stack) -> `avgpool` ->
    flatten -> `classifier`, an MLP whose last layer (`classifier.6`) makes the class scores.

    forward_features is the conv stack's last map; pre_logits is the MLP's output just
    before its last layer (FC7 after its ReLU). The stages are the last layer at each
    resolution of the conv stack (`stage_ends`).
    """

    classifier_name = "classifier.6"

    def __init__(self, features: nn.Sequential, avgpool: nn.Module, classifier: nn.Sequential,
                 small_input: bool):
        super().__init__()
        self.features, self.avgpool, self.classifier = features, avgpool, classifier
        self.in_chans, self.small_input = features[0].in_channels, small_input
        self.stage_names = stage_ends(features)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        return self.classifier[:-1](x) if pre_logits else self.classifier(x)


class LayerStack(Backbone):
    """A network written as named layers run in order, like nn.Sequential (the same
    children, so the same state-dict keys), split the vocabulary's way: forward_features
    runs the layers up to and including `features_end`, forward_head the rest, and
    pre_logits stops just before `classifier_name`. A split may name a layer inside a child
    block ("block4.3"): that block's own layers are then steps of the stack."""

    def __init__(self, layers: Mapping[str, nn.Module], *, features_end: str,
                 classifier_name: str, stage_names: Sequence[str], in_chans: int):
        super().__init__()
        for name, layer in layers.items():
            self.add_module(name, layer)
        self.classifier_name, self.stage_names = classifier_name, tuple(stage_names)
        self.in_chans = in_chans
        steps = []
        for name, child in self.named_children():
            inside = any(s.startswith(name + ".") for s in (features_end, classifier_name))
            steps += [f"{name}.{n}" for n, _ in child.named_children()] if inside else [name]
        cut = steps.index(features_end) + 1
        self._body, self._head = tuple(steps[:cut]), tuple(steps[cut:])

    def _run(self, steps: Sequence[str], x: torch.Tensor) -> torch.Tensor:
        for name in steps:  # by name: reset_classifier swaps the module behind one
            x = self.get_submodule(name)(x)
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(self._body, x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        steps = self._head
        if pre_logits:
            steps = steps[:steps.index(self.classifier_name)]
        return self._run(steps, x)


class InceptionTrunk(Backbone):
    """The Inception nets' shape: a trunk of children run in order (`trunk`, their names),
    auxiliary heads reading it in train mode (`aux_taps`: trunk module -> head on its
    output), then global average pool -> dropout -> `fc`.

    Train mode with aux heads returns AuxOutput(logits, aux) in `aux_taps` order; eval
    mode (or no aux heads) forward_head(forward_features(x)), the aux heads not run.
    pre_logits is the pooled vector after the dropout (what `fc` gets; eval: no dropout).
    `transform_input` rescales ImageNet-normalised input first (TF-ported weights).
    Subclasses set `trunk`, `aux_taps`, `transform_input`, and `min_aux_input_size`: the
    smallest side the aux heads take, checked in train mode.
    """

    trunk: tuple[str, ...] = ()
    aux_taps: Mapping[str, str] = {}
    transform_input: bool = False
    small_input: bool = False
    min_aux_input_size: int = 1

    @property
    def _aux_running(self) -> bool:
        return self.training and bool(self.aux_taps)

    def _run_trunk(self, x: torch.Tensor, aux: list | None) -> torch.Tensor:
        if self.transform_input:
            x = transform_input(x)
        for name in self.trunk:
            x = getattr(self, name)(x)
            if aux is not None and name in self.aux_taps:
                aux.append(getattr(self, self.aux_taps[name])(x))
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._run_trunk(x, None)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(torch.flatten(self.avgpool(x), 1))
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor | AuxOutput:
        if not self._aux_running:
            return self.forward_head(self.forward_features(x))
        aux: list[torch.Tensor] = []
        logits = self.forward_head(self._run_trunk(x, aux))
        return AuxOutput(logits, aux=tuple(aux))

    def check_input_size(self, input_size: Sequence[int]) -> None:
        """The stem's limit, and in train mode the aux heads' (usually larger) one."""
        c, h, w = input_size
        m = self.min_aux_input_size
        if c == self.in_chans and self._aux_running and (h < m or w < m):
            name = getattr(self, "model_name", type(self).__name__)
            hint = "" if self.small_input else ", or small_input=True for a 28/32-pixel stem"
            raise ShapeError(f"{name}: input {h}x{w} is too small; it needs at least {m}x{m} "
                             f"in train mode, where the auxiliary heads run (build with "
                             f"aux_logits=False{hint})")
        super().check_input_size(input_size)
