"""DenseNet: Huang, Liu, van der Maaten, Weinberger. Densely Connected Convolutional Networks.
CVPR 2017 (best paper).

Each layer of a dense block sees the concatenation of every earlier feature map of the block
and adds `growth_rate` (k) maps of its own. All variants here are DenseNet-BC: each layer is
BN-ReLU-conv1x1 (bn_size*k maps, the "B"ottleneck) then BN-ReLU-conv3x3 (k maps), and each
transition (BN-ReLU-conv1x1-avgpool 2x2) halves the channels ("C"ompression 0.5).

- ImageNet (paper Table 1, the lectures' table): densenet121/169/201/264, k=32, 64 stem
  maps, blocks 6-12-24-16 / 6-12-32-32 / 6-12-48-32 / 6-12-64-48; densenet161 is k=48, 96
  stem maps, 6-12-36-24. torchvision's module names (features.conv0/norm0/relu0/pool0,
  features.denseblockN.denselayerM.norm1/relu1/conv1/norm2/relu2/conv2,
  features.transitionN.norm/relu/conv/pool, features.norm5, classifier), so its ImageNet
  weights load with `strict=True`.
- CIFAR (paper sec 3 and Table 2): densenet_bc100 (k=12), densenet_bc250 (k=24),
  densenet_bc190 (k=40): three dense blocks of (L-4)/6 bottleneck layers, a 3x3 stem conv
  with 2k maps, natively 32x32.

Backbone vocabulary: forward_features is the map after norm5 and its ReLU (`relu5`, outside
`features` as in torchvision); stages are the stem's relu0 (no stem activation in the CIFAR
nets), each dense block's output before its transition, and relu5.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnzoo.errors import CnnzooError
from cnnzoo.models.backbone import Backbone
from cnnzoo.models.layers import init_weights
from cnnzoo.models.registry import register_model, torchvision_ref


class DenseNetConfigError(CnnzooError, ValueError):
    """A DenseNet-BC depth the paper's 6n+4 rule does not allow."""


PAPER = "Huang et al., Densely Connected Convolutional Networks (CVPR 2017)"
SMALL_STEM = (
    "small_input=True: conv0 becomes 3x3 stride 1 and pool0 is dropped, so a 32x32 image "
    "keeps 4x4 maps in the last dense block (the 7x7/2 stem + max-pool would leave 1x1, and a "
    "28x28 one nothing); torchvision's conv0 weights then no longer fit"
)


class DenseLayer(nn.Module):
    """BN-ReLU-conv1x1 (bn_size*k) -> BN-ReLU-conv3x3 (k) [-> dropout] on the concatenation
    of all earlier maps (paper sec 3, "Bottleneck layers")."""

    def __init__(self, cin: int, growth_rate: int, bn_size: int, drop_rate: float):
        super().__init__()
        width = bn_size * growth_rate
        self.norm1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(width)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, growth_rate, 3, padding=1, bias=False)
        self.drop_rate = drop_rate

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        out = self.conv1(self.relu1(self.norm1(torch.cat(features, 1))))
        out = self.conv2(self.relu2(self.norm2(out)))
        return F.dropout(out, self.drop_rate, self.training) if self.drop_rate > 0 else out


class DenseBlock(nn.ModuleDict):
    """`num_layers` DenseLayers (denselayer1..N); the output concatenates input and all new
    maps: cin + num_layers * k channels."""

    def __init__(self, num_layers: int, cin: int, growth_rate: int, bn_size: int,
                 drop_rate: float):
        super().__init__({
            f"denselayer{i + 1}": DenseLayer(cin + i * growth_rate, growth_rate, bn_size,
                                             drop_rate)
            for i in range(num_layers)
        })

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """BN-ReLU-conv1x1 (compression) -> 2x2 average pool, between dense blocks."""

    def __init__(self, cin: int, cout: int):
        super().__init__(OrderedDict([
            ("norm", nn.BatchNorm2d(cin)),
            ("relu", nn.ReLU(inplace=True)),
            ("conv", nn.Conv2d(cin, cout, 1, bias=False)),
            ("pool", nn.AvgPool2d(2, 2)),
        ]))


def _stem(kind: str, in_chans: int, width: int) -> list[tuple[str, nn.Module]]:
    if kind == "imagenet":  # 7x7/2 conv + 3x3/2 max-pool (Table 1)
        return [("conv0", nn.Conv2d(in_chans, width, 7, 2, 3, bias=False)),
                ("norm0", nn.BatchNorm2d(width)), ("relu0", nn.ReLU(inplace=True)),
                ("pool0", nn.MaxPool2d(3, 2, 1))]
    if kind == "small":  # 3x3/1, no max-pool: 28/32-pixel inputs
        return [("conv0", nn.Conv2d(in_chans, width, 3, 1, 1, bias=False)),
                ("norm0", nn.BatchNorm2d(width)), ("relu0", nn.ReLU(inplace=True))]
    # "cifar": a bare 3x3 conv; the first dense layer's BN-ReLU follows (paper sec 3)
    return [("conv0", nn.Conv2d(in_chans, width, 3, 1, 1, bias=False))]


class DenseNet(Backbone):
    """features (stem, dense blocks + transitions, norm5) -> ReLU -> global avg pool -> FC.

    pre_logits is the pooled vector the `classifier` takes.
    """

    classifier_name = "classifier"

    def __init__(self, growth_rate: int, block_config: tuple[int, ...], num_init_features: int,
                 *, num_classes: int = 1000, in_chans: int = 3, bn_size: int = 4,
                 compression: float = 0.5, drop_rate: float = 0.0, stem: str = "imagenet"):
        super().__init__()
        self.features = nn.Sequential(OrderedDict(_stem(stem, in_chans, num_init_features)))
        n = num_init_features
        for i, num_layers in enumerate(block_config):
            self.features.add_module(f"denseblock{i + 1}",
                                     DenseBlock(num_layers, n, growth_rate, bn_size, drop_rate))
            n += num_layers * growth_rate
            if i != len(block_config) - 1:
                cout = int(n * compression)
                self.features.add_module(f"transition{i + 1}", Transition(n, cout))
                n = cout
        self.features.add_module("norm5", nn.BatchNorm2d(n))
        self.relu5 = nn.ReLU(inplace=True)
        self.classifier = nn.Linear(n, num_classes)
        self.in_chans = in_chans
        # Smallest input that survives: the 7x7/2 conv, 3x3/2 max-pool and three 2x2 average
        # pools need 29 pixels (29 -> 15 -> 8 -> 4 -> 2 -> 1); stride-1 stems 2^transitions.
        transitions = len(block_config) - 1
        self.min_input_size = 29 if stem == "imagenet" else 2**transitions
        self.small_input = stem != "imagenet"  # a small stem already: no small_input to suggest
        stem_act = () if stem == "cifar" else ("features.relu0",)
        blocks = tuple(f"features.denseblock{i + 1}" for i in range(transitions))
        self.stage_names = (*stem_act, *blocks, "relu5")
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu5(self.features(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return x if pre_logits else self.classifier(x)


# name: (growth rate, block config, stem width). The lectures quote no ImageNet error for
# DenseNet (only the paper's error-vs-parameters figure), so top1_err/top5_err stay empty.
IMAGENET = {
    "densenet121": (32, (6, 12, 24, 16), 64),
    "densenet169": (32, (6, 12, 32, 32), 64),
    "densenet201": (32, (6, 12, 48, 32), 64),
    "densenet264": (32, (6, 12, 64, 48), 64),
    "densenet161": (48, (6, 12, 36, 24), 96),
}
# acc@1 of torchvision's IMAGENET1K_V1 weights (ported from the authors' LuaTorch models);
# torchvision has no densenet264.
TV_TOP1 = {"densenet121": 74.434, "densenet169": 75.6, "densenet201": 76.896,
           "densenet161": 77.138}
# DenseNet-264 has no torchvision weights; the paper's Table 3 gives its single-crop top-1
# error, 22.15% (the authors' released Torch model: 22.1%, 224x224 1-crop, their README).
PAPER_TOP1 = {"densenet264": 77.85}


def _register_imagenet(name: str):
    k, blocks, init = IMAGENET[name]

    def build(num_classes=1000, in_chans=3, *, small_input=False, drop_rate=0.0):
        return DenseNet(k, blocks, init, num_classes=num_classes, in_chans=in_chans,
                        drop_rate=drop_rate, stem="small" if small_input else "imagenet")

    build.__name__ = build.__qualname__ = name
    build.__doc__ = (f"{name}: DenseNet-BC, k={k}, blocks {'-'.join(map(str, blocks))}, "
                     f"{init} stem maps ({PAPER}). drop_rate: dropout after each dense "
                     f"layer. {SMALL_STEM}.")
    notes = f"k={k}, blocks {'-'.join(map(str, blocks))}, bn_size 4, compression 0.5."
    if name == "densenet161":
        notes += " Table 3's 'DenseNet-161 (k=48)'; torchvision's layout."
    ref = {}
    if name in TV_TOP1:
        ref = torchvision_ref(TV_TOP1[name], "DenseNet" + name[len("densenet"):])
    elif name in PAPER_TOP1:
        ref = dict(ref_top1_acc=PAPER_TOP1[name], ref_source="Huang et al. 2017 Table 3: "
                   "single model, single crop 224 (top-1 error 22.15%)")
    return register_model(family="densenet", paper=PAPER, year=2017, input_size=(3, 224, 224),
                          recipe="densenet", small_input=SMALL_STEM, notes=notes, name=name,
                          **ref)(build)


densenet121 = _register_imagenet("densenet121")
densenet169 = _register_imagenet("densenet169")
densenet201 = _register_imagenet("densenet201")
densenet264 = _register_imagenet("densenet264")
densenet161 = _register_imagenet("densenet161")


# name: (depth L, growth rate k, parameters as the paper's Table 2 gives them)
CIFAR = {
    "densenet_bc100": (100, 12, "0.8M"),
    "densenet_bc250": (250, 24, "15.3M"),
    "densenet_bc190": (190, 40, "25.6M"),
}


def densenet_bc_cifar(depth: int, growth_rate: int, num_classes: int = 10, in_chans: int = 3,
                      drop_rate: float = 0.0) -> DenseNet:
    """DenseNet-BC for CIFAR: 3 blocks of (depth - 4) / 6 bottleneck layers, 2k stem maps."""
    if depth < 10 or (depth - 4) % 6:
        raise DenseNetConfigError(f"DenseNet-BC depth must be 6n+4, got {depth}")
    n = (depth - 4) // 6
    return DenseNet(growth_rate, (n, n, n), 2 * growth_rate, num_classes=num_classes,
                    in_chans=in_chans, drop_rate=drop_rate, stem="cifar")


def _register_cifar(name: str):
    depth, k, params = CIFAR[name]

    def build(num_classes=10, in_chans=3, *, drop_rate=0.0):
        return densenet_bc_cifar(depth, k, num_classes, in_chans, drop_rate)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = (f"{name}: DenseNet-BC (L={depth}, k={k}) for CIFAR ({PAPER}, Table 2). "
                     "Natively 32x32; drop_rate: dropout after each dense layer (the paper "
                     "uses 0.2 without data augmentation).")
    return register_model(family="densenet", paper=PAPER, year=2017, input_size=(3, 32, 32),
                          recipe="densenet_cifar", name=name,
                          notes=f"L={depth}, k={k}: {params} params (Table 2).")(build)


densenet_bc100 = _register_cifar("densenet_bc100")
densenet_bc250 = _register_cifar("densenet_bc250")
densenet_bc190 = _register_cifar("densenet_bc190")
