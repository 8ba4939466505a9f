"""Network in Network: Lin, Chen & Yan, ICLR 2014 (arXiv 1312.4400).

An mlpconv block is a conv followed by two 1x1 convs (a small MLP slid over the image), each
with ReLU. The last block outputs one map per class and global average pooling turns the maps
into logits: no fully connected layers.

- `nin`: the ImageNet model the authors released (Caffe model zoo): mlpconv 96 11x11/4,
  256 5x5, 384 3x3 (each followed by 3x3/2 max-pooling), dropout, then 1024 3x3 -> 1024 1x1
  -> num_classes 1x1 and global average pooling; 7.6M parameters at 1000 classes.
- `nin_cifar`: the paper's CIFAR-10 model: 192-160-96 (5x5), max-pool 3x3/2, dropout,
  192-192-192 (5x5), average-pool 3x3/2, dropout, 192-192-10 (3x3), global average pooling.

Pools round up (ceil mode) as in the authors' Caffe / cuda-convnet models, which gives their
map sizes: 224-54-27-13-6 for `nin`, 32-16-8 for `nin_cifar`. The final block keeps its ReLU
before the average, as in the released models.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn

from cnnzoo.models.layers import LayerStack, init_weights
from cnnzoo.models.registry import register_model


def mlpconv(
    in_ch: int, widths: tuple[int, int, int], kernel_size: int, stride: int = 1, padding: int = 0
) -> nn.Sequential:
    """conv kxk -> ReLU -> conv 1x1 -> ReLU -> conv 1x1 -> ReLU (the paper's Fig. 2)."""
    a, b, c = widths
    return nn.Sequential(
        nn.Conv2d(in_ch, a, kernel_size, stride, padding), nn.ReLU(inplace=True),
        nn.Conv2d(a, b, 1), nn.ReLU(inplace=True),
        nn.Conv2d(b, c, 1), nn.ReLU(inplace=True),
    )


_PAPER = "Lin, Chen & Yan, Network In Network, ICLR 2014"


class NiN(LayerStack):
    """mlpconv blocks, pools and dropout (`layers`, in order), then `gap` and `flatten`.

    The class scores come from the last block's final 1x1 conv (`classifier_name`, e.g.
    "block4.4"), one map per class, which ReLU and the global average make logits. So
    forward_features is the map that conv takes (the block's second 1x1 conv, after its
    ReLU), and pre_logits is that map averaged globally: get_classifier() applied to it as
    a 1x1 map, `conv(v[:, :, None, None])`, gives the average class maps before the final
    ReLU (the logits when no class map is negative). The stages are each block's output,
    the last block's up to that feature map.
    """

    def __init__(self, layers: OrderedDict, in_chans: int):
        layers = OrderedDict(layers, gap=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten())
        blocks = [n for n in layers if n.startswith("block")]
        features_end = f"{blocks[-1]}.3"
        super().__init__(layers, features_end=features_end,
                         classifier_name=f"{blocks[-1]}.4",
                         stage_names=(*blocks[:-1], features_end), in_chans=in_chans)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits:
            return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return super().forward_head(x)


def _init(model: NiN) -> NiN:
    """He init, with the class-map conv on fan_in like the zoo's Linear classifiers: fan_out
    of a 1024 -> 10 1x1 conv is 10, which would give std 0.45 weights and an initial loss of
    up to 5 instead of ~ln(classes)."""
    init_weights(model, "relu")
    nn.init.kaiming_normal_(model.get_classifier().weight, mode="fan_in",
                            nonlinearity="relu")
    return model


@register_model(
    family="nin",
    paper=_PAPER,
    year=2014,
    input_size=(3, 224, 224),
    recipe="nin",
    small_input="the first mlpconv's conv becomes 5x5 stride 1 pad 2 (as in the CIFAR model) "
    "instead of 11x11/4, which would leave no map for the third pool of a 32x32 image",
    notes="The authors' released ImageNet NIN: mlpconv 96-96-96 (11x11/4), 256-256-256 (5x5), "
    "384-384-384 (3x3), dropout 0.5, 1024-1024-num_classes (3x3), global average pooling; "
    "3x3/2 ceil-mode max-pools.",
)
def nin(
    num_classes: int = 1000, in_chans: int = 3, *, small_input: bool = False, dropout: float = 0.5
) -> nn.Module:
    """NIN for ImageNet (224x224): four mlpconv blocks and global average pooling."""
    stem = (5, 1, 2) if small_input else (11, 4, 0)
    model = NiN(OrderedDict([
        ("block1", mlpconv(in_chans, (96, 96, 96), *stem)),  # 224 -> 54
        ("pool1", nn.MaxPool2d(3, 2, ceil_mode=True)),  # 27
        ("block2", mlpconv(96, (256, 256, 256), 5, 1, 2)),
        ("pool2", nn.MaxPool2d(3, 2, ceil_mode=True)),  # 13
        ("block3", mlpconv(256, (384, 384, 384), 3, 1, 1)),
        ("pool3", nn.MaxPool2d(3, 2, ceil_mode=True)),  # 6
        ("drop", nn.Dropout(dropout)),
        ("block4", mlpconv(384, (1024, 1024, num_classes), 3, 1, 1)),
    ]), in_chans)
    return _init(model)


@register_model(
    family="nin",
    paper=_PAPER,
    year=2014,
    input_size=(3, 32, 32),
    recipe="nin",
    small_input="",
    notes="The paper's CIFAR-10 model: mlpconv 192-160-96 (5x5), max-pool 3x3/2, dropout 0.5, "
    "192-192-192 (5x5), avg-pool 3x3/2, dropout 0.5, 192-192-num_classes (3x3), global "
    "average pooling (32-16-8). 28x28 inputs give 28-14-7.",
)
def nin_cifar(num_classes: int = 10, in_chans: int = 3, *, dropout: float = 0.5) -> nn.Module:
    """NIN for CIFAR-10 (32x32): three mlpconv blocks, dropout between them, global average."""
    model = NiN(OrderedDict([
        ("block1", mlpconv(in_chans, (192, 160, 96), 5, 1, 2)),
        ("pool1", nn.MaxPool2d(3, 2, ceil_mode=True)),  # 16
        ("drop1", nn.Dropout(dropout)),
        ("block2", mlpconv(96, (192, 192, 192), 5, 1, 2)),
        ("pool2", nn.AvgPool2d(3, 2, ceil_mode=True)),  # 8
        ("drop2", nn.Dropout(dropout)),
        ("block3", mlpconv(192, (192, 192, num_classes), 3, 1, 1)),
    ]), in_chans)
    return _init(model)
