"""AlexNet and ZFNet, the ILSVRC 2012 and 2013 networks.

- `alexnet`: torchvision's single-tower layout (64-192-384-256-256 filters, from Krizhevsky's
  "One weird trick for parallelizing convolutional neural networks", 2014), with its module
  names (`features.N`, `avgpool`, `classifier.N`) so torchvision's ImageNet weights load with
  `strict=True`. 61,100,840 parameters.
- `alexnet_paper`: Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep
  Convolutional Neural Networks", NIPS 2012: 96-256-384-384-256 filters on 227x227 inputs,
  local response normalisation, dropout 0.5. `groups=2` is the original two-GPU split, where
  CONV2/4/5 see only the maps on their own GPU (grouped convolutions).
- `zfnet`: Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", ECCV
  2014: CONV1 7x7 stride 2, CONV2 stride 2, and the lectures' 512-1024-512 CONV3/4/5.

Local response normalisation (paper sec. 3.3): b_i = a_i / (k + alpha * sum_j a_j^2)^beta over
the n = 5 neighbouring maps, k = 2, alpha = 1e-4, beta = 0.75. `alexnet_paper` applies it
after the ReLUs of CONV1 and CONV2 and BEFORE their max-pools, as the paper says ("Response-
normalization layers follow the first and second convolutional layers. Max-pooling layers
follow both response-normalization layers"); the CS231n slide (seed 001) lists POOL then NORM.
The shapes are the same either way. ZFNet's paper (Fig. 3) pools first and then normalises
across feature maps, so `zfnet` keeps that order with the same LRN.

`small_input=True` (28/32-pixel images) swaps the stride-4 (stride-2) stem for a 3x3 stride-1
conv: the 11x11/4 stem would shrink a 32x32 image to 7x7, and the third max-pool would then
get an empty map. The last map is then 2x2 or 3x3 (AlexNet) / 3x3 or 4x4 (ZFNet), so the
small form averages it globally and FC6 takes the 256 (ZFNet: 512) channels, as VGG's small
form does, instead of blowing a 3x3 map up to the 6x6 the ImageNet FC6 expects. The default
(ImageNet) form keeps torchvision's layout and its 6x6 adaptive pool.
"""

from __future__ import annotations

import torch.nn as nn

from cnnzoo.errors import CnnzooError
from cnnzoo.models.layers import FeaturesClassifier, init_weights
from cnnzoo.models.registry import register_model, torchvision_ref

_SMALL = "CONV1 becomes 3x3 stride 1 pad 1 (the 11x11/4 stem leaves 7x7 of a 32x32 image)"
_SMALL_POOL = ("; the last map (2x2-4x4) is averaged globally and FC6 takes its {width} "
               "channels instead of a 6x6 map")


LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K = 5, 1e-4, 0.75, 2.0  # the paper's n, alpha, beta, k


def _lrn() -> nn.LocalResponseNorm:
    # torch computes a / (k + alpha/n * sum a^2)^beta (it averages the squares, as Caffe
    # does), so the paper's k + alpha * sum needs alpha * n = 5e-4 here; passing 1e-4 would
    # normalise 5x more weakly than the paper.
    return nn.LocalResponseNorm(size=LRN_SIZE, alpha=LRN_ALPHA * LRN_SIZE, beta=LRN_BETA,
                                k=LRN_K)


def _classifier(in_features: int, num_classes: int, dropout: float) -> nn.Sequential:
    # torchvision's order: Dropout, FC6, ReLU, Dropout, FC7, ReLU, FC8 (keys classifier.1/4/6)
    return nn.Sequential(
        nn.Dropout(dropout),
        nn.Linear(in_features, 4096),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(4096, 4096),
        nn.ReLU(inplace=True),
        nn.Linear(4096, num_classes),
    )


class AlexNet(FeaturesClassifier):
    """features -> avgpool -> flatten -> classifier, torchvision's layout.

    avgpool is adaptive 6x6 (the identity at the native input size) or, with small_input,
    a global average, so FC6 never sees a small map replicated up to 6x6.
    forward_features is the last max-pool's map; pre_logits is FC7's output (after its
    ReLU), what FC8 (`classifier.6`) takes.
    """

    def __init__(self, features: nn.Sequential, width: int, num_classes: int, dropout: float,
                 small_input: bool = False):
        pool = 1 if small_input else 6
        super().__init__(features, nn.AdaptiveAvgPool2d((pool, pool)),
                         _classifier(width * pool * pool, num_classes, dropout), small_input)


def _stem(in_chans: int, out: int, kernel: int, stride: int, pad: int, small: bool) -> nn.Conv2d:
    if small:
        return nn.Conv2d(in_chans, out, 3, 1, 1)
    return nn.Conv2d(in_chans, out, kernel, stride, pad)


@register_model(
    family="alexnet",
    paper="Krizhevsky, One weird trick for parallelizing convolutional neural networks, 2014 "
    "(torchvision's AlexNet)",
    year=2012,
    input_size=(3, 224, 224),
    top5_err=16.4,
    **torchvision_ref(56.522, "AlexNet"),
    recipe="alexnet",
    small_input=_SMALL + _SMALL_POOL.format(width=256),
    notes="torchvision's single-tower AlexNet (64-192-384-256-256, no LRN), same state-dict "
    "keys. top5_err is the lectures' quote for the ILSVRC 2012 entry (the paper's network, "
    "see alexnet_paper).",
)
def alexnet(
    num_classes: int = 1000, in_chans: int = 3, *, small_input: bool = False, dropout: float = 0.5
) -> nn.Module:
    """AlexNet in torchvision's layout: 5 conv + 3 FC, 61.1M parameters at 1000 classes."""
    features = nn.Sequential(
        _stem(in_chans, 64, 11, 4, 2, small_input),  # features.0
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2),  # features.3
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1),  # features.6
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1),  # features.8
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, 3, padding=1),  # features.10
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
    )
    return init_weights(AlexNet(features, 256, num_classes, dropout, small_input), "relu")


@register_model(
    family="alexnet",
    paper="Krizhevsky, Sutskever & Hinton, ImageNet Classification with Deep Convolutional "
    "Neural Networks, NIPS 2012",
    year=2012,
    input_size=(3, 227, 227),
    top5_err=16.4,
    recipe="alexnet",
    small_input=_SMALL + "; pools and LRN are unchanged" + _SMALL_POOL.format(width=256),
    notes="CONV1 96 11x11/4 -> NORM1 -> MAXPOOL1 -> CONV2 256 5x5 -> NORM2 -> MAXPOOL2 -> "
    "CONV3 384 -> CONV4 384 -> CONV5 256 -> MAXPOOL3 -> FC 4096-4096-1000, dropout 0.5. "
    "LRN before pooling as in the paper (the CS231n slide lists MAXPOOL then NORM; same "
    "shapes), with the paper's k=2, n=5, alpha=1e-4 (on the sum of squares), beta=0.75. "
    "groups=2: the two-GPU split, CONV2/4/5 connected within each half. 62,378,344 params "
    "(groups=1), 60,965,224 (groups=2). top5_err: the lectures' 16.4% for the ILSVRC 2012 "
    "entry (no single-crop figure for published weights, so no ref_top1_acc).",
)
def alexnet_paper(
    num_classes: int = 1000,
    in_chans: int = 3,
    *,
    groups: int = 1,
    small_input: bool = False,
    dropout: float = 0.5,
) -> nn.Module:
    """AlexNet as in the 2012 paper, on 227x227 inputs (55-27-27-13-13-13-13-6 maps).

    groups: 1 = one tower; 2 = the original two-GPU form (CONV2, CONV4, CONV5 are grouped
    convolutions; CONV3 and the FCs see both halves).
    """
    if groups not in (1, 2):
        raise CnnzooError(f"alexnet_paper: groups must be 1 or 2 (two GPUs), got {groups}")
    features = nn.Sequential(
        _stem(in_chans, 96, 11, 4, 0, small_input),  # 227 -> 55
        nn.ReLU(inplace=True),
        _lrn(),  # the paper normalises before pooling
        nn.MaxPool2d(3, 2),  # 27
        nn.Conv2d(96, 256, 5, padding=2, groups=groups),
        nn.ReLU(inplace=True),
        _lrn(),
        nn.MaxPool2d(3, 2),  # 13
        nn.Conv2d(256, 384, 3, padding=1),  # CONV3 sees all maps of CONV2
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 384, 3, padding=1, groups=groups),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1, groups=groups),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),  # 6
    )
    return init_weights(AlexNet(features, 256, num_classes, dropout, small_input), "relu")


@register_model(
    family="alexnet",
    paper="Zeiler & Fergus, Visualizing and Understanding Convolutional Networks, ECCV 2014",
    year=2013,
    input_size=(3, 224, 224),
    top5_err=11.7,
    recipe="alexnet",
    small_input="CONV1 becomes 3x3 stride 1 pad 1 and CONV2 5x5 stride 1 pad 2 (the two "
    "stride-2 convs would leave 3x3 of a 32x32 image before CONV3)" + _SMALL_POOL.format(
        width=512) + ".",
    notes="AlexNet with CONV1 7x7/2 and CONV2 5x5/2 (paper's Fig. 3: 224 -> 110 -> 55 -> 26 "
    "-> 13 -> 6; padding 1 on CONV1 and ceil-mode 3x3/2 pooling reproduce those sizes), "
    "contrast normalisation across feature maps after pools 1 and 2 (Fig. 3's order: ReLU, "
    "pool, normalise; AlexNet's LRN parameters, which the paper does not restate), "
    "CONV3/4/5 = 512/1024/512 as the lectures give. top5_err: the lectures' 11.7% "
    "(ILSVRC 2013).",
)
def zfnet(
    num_classes: int = 1000, in_chans: int = 3, *, small_input: bool = False, dropout: float = 0.5
) -> nn.Module:
    """ZFNet: AlexNet with a 7x7/2 first layer and wider CONV3-5 (512-1024-512)."""
    conv2 = (
        nn.Conv2d(96, 256, 5, 1, 2) if small_input else nn.Conv2d(96, 256, 5, 2, 0)
    )
    features = nn.Sequential(
        _stem(in_chans, 96, 7, 2, 1, small_input),  # 224 -> 110
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, ceil_mode=True),  # 55 (Caffe-style rounding up)
        _lrn(),  # ZF Fig. 3: pooled, then normalised across feature maps
        conv2,  # 26
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, ceil_mode=True),  # 13
        _lrn(),
        nn.Conv2d(256, 512, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(512, 1024, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(1024, 512, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, ceil_mode=True),  # 6
    )
    return init_weights(AlexNet(features, 512, num_classes, dropout, small_input), "relu")
