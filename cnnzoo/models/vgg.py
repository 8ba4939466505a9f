"""VGG: Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015; and the reduced VGG of the CS324 second assignment.

One config table (the paper's Table 1 columns A, B, D, E; ints are 3x3 conv widths, "M" a
2x2/2 max-pool) builds vgg11/13/16/19 and their `_bn` forms, in torchvision's layout and
naming (`features.N`, `avgpool` = AdaptiveAvgPool2d(7), `classifier.0/3/6`), so torchvision's
ImageNet weights load with `strict=True`.

`small_input=True` (28/32-pixel images) keeps the conv stack but pools round up (so 28 px
survives the five halvings: 28-14-7-4-2-1) and the 7x7 adaptive pool + 25088-wide classifier
become a 1x1 pool and a 512-wide classifier input.
"""

from __future__ import annotations

from collections import OrderedDict

import torch.nn as nn

from cnnzoo.models.layers import (
    ConvBnAct,
    FeaturesClassifier,
    LayerStack,
    init_weights,
    stage_ends,
)
from cnnzoo.models.registry import register_model, torchvision_ref

cfgs: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
          512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],
}


def make_layers(
    cfg: list[int | str], batch_norm: bool, in_chans: int = 3, ceil_mode: bool = False
) -> nn.Sequential:
    layers: list[nn.Module] = []
    ch = in_chans
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=ceil_mode))
            continue
        layers.append(nn.Conv2d(ch, v, 3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU(inplace=True))
        ch = v
    return nn.Sequential(*layers)


class VGG(FeaturesClassifier):
    """features -> avgpool -> flatten -> classifier, torchvision's layout.

    forward_features is the last max-pool's map (7x7x512 at 224); pre_logits is FC7's output
    (after its ReLU and dropout), what FC8 (`classifier.6`) takes. The stages are the last
    ReLU before each pool (as timm's) and the last pool.
    """

    def __init__(
        self, features: nn.Sequential, num_classes: int, small_input: bool, dropout: float
    ):
        pool = 1 if small_input else 7
        classifier = nn.Sequential(
            nn.Linear(512 * pool * pool, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, num_classes),
        )
        super().__init__(features, nn.AdaptiveAvgPool2d((pool, pool)), classifier, small_input)


_PAPER = ("Simonyan & Zisserman, Very Deep Convolutional Networks for Large-Scale Image "
          "Recognition, ICLR 2015")
_SMALL = ("ceil-mode pools (28-14-7-4-2-1) and a 1x1 pool + 512-wide classifier input instead "
          "of the 7x7 pool + 25088-wide one")


# acc@1 of torchvision's IMAGENET1K_V1 weights, by (configuration, batch norm).
_TV_TOP1 = {("A", False): 69.02, ("A", True): 70.37, ("B", False): 69.928,
            ("B", True): 71.586, ("D", False): 71.592, ("D", True): 73.36,
            ("E", False): 72.376, ("E", True): 74.218}
_DEPTH = {"A": 11, "B": 13, "D": 16, "E": 19}


def _meta(cfg: str, bn: bool, **quoted) -> dict:
    notes = f"Configuration {cfg} of the paper's Table 1" + (
        "; BatchNorm after every conv (not in the paper; torchvision's _bn variant)." if bn
        else "."
    )
    return dict(family="vgg", paper=_PAPER, year=2014, input_size=(3, 224, 224), recipe="vgg",
                small_input=_SMALL + ".", notes=notes,
                **torchvision_ref(_TV_TOP1[(cfg, bn)], f"VGG{_DEPTH[cfg]}{'_BN' if bn else ''}"),
                **quoted)


def _vgg(cfg: str, bn: bool, num_classes: int, in_chans: int, small_input: bool,
         dropout: float) -> nn.Module:
    features = make_layers(cfgs[cfg], bn, in_chans, ceil_mode=small_input)
    return init_weights(VGG(features, num_classes, small_input, dropout), "relu")


@register_model(**_meta("A", False))
def vgg11(num_classes=1000, in_chans=3, *, small_input=False, dropout=0.5) -> nn.Module:
    """VGG-11 (configuration A), 132.9M parameters."""
    return _vgg("A", False, num_classes, in_chans, small_input, dropout)


@register_model(**_meta("A", True))
def vgg11_bn(num_classes=1000, in_chans=3, *, small_input=False, dropout=0.5) -> nn.Module:
    """VGG-11 (configuration A) with BatchNorm after every conv."""
    return _vgg("A", True, num_classes, in_chans, small_input, dropout)


@register_model(**_meta("B", False))
def vgg13(num_classes=1000, in_chans=3, *, small_input=False, dropout=0.5) -> nn.Module:
    """VGG-13 (configuration B), 133.0M parameters."""
    return _vgg("B", False, num_classes, in_chans, small_input, dropout)


@register_model(**_meta("B", True))
def vgg13_bn(num_classes=1000, in_chans=3, *, small_input=False, dropout=0.5) -> nn.Module:
    """VGG-13 (configuration B) with BatchNorm after every conv."""
    return _vgg("B", True, num_classes, in_chans, small_input, dropout)


# The lectures quote 7.3% (seed 001) / 7.32% (seed 002) top-5 for VGG-16 at ILSVRC 2014.
@register_model(**_meta("D", False, top5_err=7.32))
def vgg16(num_classes=1000, in_chans=3, *, small_input=False, dropout=0.5) -> nn.Module:
    """VGG-16 (configuration D), 138.4M parameters."""
    return _vgg("D", False, num_classes, in_chans, small_input, dropout)


@register_model(**_meta("D", True))
def vgg16_bn(num_classes=1000, in_chans=3, *, small_input=False, dropout=0.5) -> nn.Module:
    """VGG-16 (configuration D) with BatchNorm after every conv."""
    return _vgg("D", True, num_classes, in_chans, small_input, dropout)


@register_model(**_meta("E", False))
def vgg19(num_classes=1000, in_chans=3, *, small_input=False, dropout=0.5) -> nn.Module:
    """VGG-19 (configuration E), 143.7M parameters."""
    return _vgg("E", False, num_classes, in_chans, small_input, dropout)


@register_model(**_meta("E", True))
def vgg19_bn(num_classes=1000, in_chans=3, *, small_input=False, dropout=0.5) -> nn.Module:
    """VGG-19 (configuration E) with BatchNorm after every conv."""
    return _vgg("E", True, num_classes, in_chans, small_input, dropout)


@register_model(
    family="vgg",
    paper="CS324 (SUSTech) Deep Learning, second assignment: a reduced VGG for CIFAR-10",
    year=2014,
    input_size=(3, 32, 32),
    recipe="vgg",
    small_input="",
    notes="The assignment's 14 layers: 8 conv (3x3/1/1, each Conv2d + BatchNorm + ReLU, "
    "PyTorch defaults so convs keep their bias), 5 max-pools 3x3/2/1 (32-16-8-4-2-1), "
    "linear 512->10.",
)
def vgg_cs324(num_classes: int = 10, in_chans: int = 3) -> nn.Module:
    """The CS324 assignment's reduced VGG, layer for layer (seed 002, last slides)."""

    def conv(cin: int, cout: int) -> ConvBnAct:  # 3x3/1/1 conv, with PyTorch's default bias
        return ConvBnAct(cin, cout, 3, 1, 1, bias=True)

    def pool() -> nn.MaxPool2d:
        return nn.MaxPool2d(3, 2, 1)

    features = nn.Sequential(
        conv(in_chans, 64), pool(),
        conv(64, 128), pool(),
        conv(128, 256), conv(256, 256), pool(),
        conv(256, 512), conv(512, 512), pool(),
        conv(512, 512), conv(512, 512), pool(),
    )
    model = LayerStack(OrderedDict([
        ("features", features),
        ("flatten", nn.Flatten()),
        ("classifier", nn.Linear(512, num_classes)),
    ]), features_end="features", classifier_name="classifier",
        stage_names=stage_ends(features), in_chans=in_chans)
    return init_weights(model, "relu")
