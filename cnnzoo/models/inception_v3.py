"""Inception-v3: Szegedy, Vanhoucke, Ioffe, Shlens & Wojna, "Rethinking the Inception
Architecture for Computer Vision", CVPR 2016 (arXiv:1512.00567).

nxn convs factorised into 1xn + nx1 (Fig. 6), 5x5 into two 3x3 (Fig. 5), the 8x8 outputs
widened with parallel 1x3 / 3x1 convs (Fig. 7), grid reductions that pool and convolve side
by side (Fig. 10), a BatchNorm auxiliary head, 299x299 input. The network is the paper's
Table 1 as released (and ported to torchvision): `STEM` and `BLOCKS` below.

State-dict keys and shapes follow torchvision's `inception_v3`, so its ImageNet weights load;
they were ported from TensorFlow and need `transform_input=True`, as for GoogLeNet.

small_input: stride-1, padded stem convs and padded ("same") grid reductions, so 32x32
reaches the 35x35 blocks at 8x8 (ImageNet: 299 -> 35) and the 8x8 blocks at 2x2. No
parameter shapes change.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from cnnzoo.models.layers import (
    TV_WEIGHTS_NOTE,
    BasicConv2d,
    InceptionTrunk,
    check_transform_input,
    init_weights,
)
from cnnzoo.models.registry import register_model, torchvision_ref

conv = BasicConv2d  # conv -> BN (eps 1e-3) -> ReLU, torchvision's key names


def avg_pool() -> nn.AvgPool2d:
    # torchvision's 3x3/1 branch pool counts the zero padding (TF-slim's "SAME" does not)
    return nn.AvgPool2d(3, stride=1, padding=1)


class InceptionA(nn.Module):
    """35x35 module (paper Fig. 5): the 5x5 conv factorised into two 3x3."""

    def __init__(self, in_ch: int, pool_features: int):
        super().__init__()
        self.branch1x1 = conv(in_ch, 64, 1)
        self.branch5x5_1 = conv(in_ch, 48, 1)
        self.branch5x5_2 = conv(48, 64, 5)
        self.branch3x3dbl_1 = conv(in_ch, 64, 1)
        self.branch3x3dbl_2 = conv(64, 96, 3)
        self.branch3x3dbl_3 = conv(96, 96, 3)
        self.pool = avg_pool()
        self.branch_pool = conv(in_ch, pool_features, 1)

    def forward(self, x):
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(self.pool(x))], 1)


class InceptionB(nn.Module):
    """35 -> 17 grid reduction (paper Fig. 10): stride-2 convs beside a stride-2 max-pool."""

    def __init__(self, in_ch: int, pad: int = 0):
        super().__init__()
        self.branch3x3 = conv(in_ch, 384, 3, stride=2, padding=pad)
        self.branch3x3dbl_1 = conv(in_ch, 64, 1)
        self.branch3x3dbl_2 = conv(64, 96, 3)
        self.branch3x3dbl_3 = conv(96, 96, 3, stride=2, padding=pad)
        self.pool = nn.MaxPool2d(3, stride=2, padding=pad)

    def forward(self, x):
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, self.pool(x)], 1)


class InceptionC(nn.Module):
    """17x17 module (paper Fig. 6): 7x7 convs factorised into 1x7 and 7x1."""

    def __init__(self, in_ch: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = conv(in_ch, 192, 1)
        self.branch7x7_1 = conv(in_ch, c7, 1)
        self.branch7x7_2 = conv(c7, c7, (1, 7))
        self.branch7x7_3 = conv(c7, 192, (7, 1))
        self.branch7x7dbl_1 = conv(in_ch, c7, 1)
        self.branch7x7dbl_2 = conv(c7, c7, (7, 1))
        self.branch7x7dbl_3 = conv(c7, c7, (1, 7))
        self.branch7x7dbl_4 = conv(c7, c7, (7, 1))
        self.branch7x7dbl_5 = conv(c7, 192, (1, 7))
        self.pool = avg_pool()
        self.branch_pool = conv(in_ch, 192, 1)

    def forward(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for i in range(1, 6):
            d = getattr(self, f"branch7x7dbl_{i}")(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(self.pool(x))], 1)


class InceptionD(nn.Module):
    """17 -> 8 grid reduction."""

    def __init__(self, in_ch: int, pad: int = 0):
        super().__init__()
        self.branch3x3_1 = conv(in_ch, 192, 1)
        self.branch3x3_2 = conv(192, 320, 3, stride=2, padding=pad)
        self.branch7x7x3_1 = conv(in_ch, 192, 1)
        self.branch7x7x3_2 = conv(192, 192, (1, 7))
        self.branch7x7x3_3 = conv(192, 192, (7, 1))
        self.branch7x7x3_4 = conv(192, 192, 3, stride=2, padding=pad)
        self.pool = nn.MaxPool2d(3, stride=2, padding=pad)

    def forward(self, x):
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = x
        for i in range(1, 5):
            b7 = getattr(self, f"branch7x7x3_{i}")(b7)
        return torch.cat([b3, b7, self.pool(x)], 1)


class InceptionE(nn.Module):
    """8x8 module (paper Fig. 7): widened with parallel 1x3 / 3x1 outputs."""

    def __init__(self, in_ch: int):
        super().__init__()
        self.branch1x1 = conv(in_ch, 320, 1)
        self.branch3x3_1 = conv(in_ch, 384, 1)
        self.branch3x3_2a = conv(384, 384, (1, 3))
        self.branch3x3_2b = conv(384, 384, (3, 1))
        self.branch3x3dbl_1 = conv(in_ch, 448, 1)
        self.branch3x3dbl_2 = conv(448, 384, 3)
        self.branch3x3dbl_3a = conv(384, 384, (1, 3))
        self.branch3x3dbl_3b = conv(384, 384, (3, 1))
        self.pool = avg_pool()
        self.branch_pool = conv(in_ch, 192, 1)

    def forward(self, x):
        b3 = self.branch3x3_1(x)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch3x3_2a(b3),
                self.branch3x3_2b(b3),
                self.branch3x3dbl_3a(d),
                self.branch3x3dbl_3b(d),
                self.branch_pool(self.pool(x)),
            ],
            1,
        )


class InceptionAux(nn.Module):
    """v3 auxiliary head on the 17x17 grid: AvgPool 5x5/3 -> 1x1 conv 128 -> 5x5 conv 768 ->
    FC. The paper credits it as a regulariser (Sec. 4). With small_input the pool is skipped
    and the 5x5 conv is padded, so a 4x4 grid still fits."""

    def __init__(self, in_ch: int, num_classes: int, small_input: bool = False):
        super().__init__()
        self.pool = nn.Identity() if small_input else nn.AvgPool2d(5, stride=3)
        self.conv0 = conv(in_ch, 128, 1)
        self.conv1 = conv(128, 768, 5, padding=2 if small_input else 0)
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x):
        x = self.conv1(self.conv0(self.pool(x)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


# Table 1 as released: the stem, in order. (name, out channels, kernel, stride, valid):
# "valid" layers are unpadded at ImageNet size and padded with small_input, and the first
# conv's stride 2 becomes 1 there; "M" is a 3x3/2 max-pool.
STEM = [
    ("Conv2d_1a_3x3", 32, 3, 2, True),
    ("Conv2d_2a_3x3", 32, 3, 1, True),
    ("Conv2d_2b_3x3", 64, 3, 1, False),
    ("maxpool1", "M"),
    ("Conv2d_3b_1x1", 80, 1, 1, False),
    ("Conv2d_4a_3x3", 192, 3, 1, True),
    ("maxpool2", "M"),
]
# Then the Inception blocks: (name, block, in channels, width). The width is InceptionA's
# pool_features and InceptionC's channels_7x7; the grid reductions (B, D) and E have none.
BLOCKS = [
    ("Mixed_5b", InceptionA, 192, 32),  # 35x35 (Fig. 5), x3
    ("Mixed_5c", InceptionA, 256, 64),
    ("Mixed_5d", InceptionA, 288, 64),
    ("Mixed_6a", InceptionB, 288, None),  # 35 -> 17 (Fig. 10)
    ("Mixed_6b", InceptionC, 768, 128),  # 17x17 (Fig. 6), x4
    ("Mixed_6c", InceptionC, 768, 160),
    ("Mixed_6d", InceptionC, 768, 160),
    ("Mixed_6e", InceptionC, 768, 192),
    ("Mixed_7a", InceptionD, 768, None),  # 17 -> 8
    ("Mixed_7b", InceptionE, 1280, None),  # 8x8 (Fig. 7), x2
    ("Mixed_7c", InceptionE, 2048, None),
]
GRID_REDUCTIONS = (InceptionB, InceptionD)  # padded ("same") with small_input


class Inception3(InceptionTrunk):
    """Inception-v3 in torchvision's layout (`STEM`, `BLOCKS`; the aux head reads Mixed_6e).

    forward_features is Mixed_7c's 8x8x2048 map (at 299), pre_logits its average after the
    dropout: what `fc` takes. Train mode with the aux head returns AuxOutput(logits, aux=(a,)).
    """

    aux_classifier_names = ("AuxLogits.fc",)
    # timm's stages, but at stride 4 Conv2d_3b_1x1 (73x73) rather than Conv2d_4a_3x3: the
    # valid 3x3 conv leaves 71x71, too far from 299 / 4 for a stride-4 map.
    stage_names = ("Conv2d_2b_3x3", "Conv2d_3b_1x1", "Mixed_5d", "Mixed_6e", "Mixed_7c")
    # Smallest input side by small_input: the stem alone, and with the aux head running
    # (train mode), whose 5x5/3 pool followed by a 5x5 valid conv needs 17x17 at Mixed_6e.
    MIN_SIZE = {False: 75, True: 1}
    MIN_AUX_SIZE = {False: 299, True: 1}

    def __init__(self, num_classes=1000, in_chans=3, aux_logits=True, small_input=False,
                 dropout=0.5, transform_input=False):
        super().__init__()
        check_transform_input("inception_v3", transform_input, in_chans)
        self.in_chans, self.small_input = in_chans, small_input
        self.transform_input = transform_input
        self.min_input_size = self.MIN_SIZE[small_input]
        self.min_aux_input_size = self.MIN_AUX_SIZE[small_input]
        p = 1 if small_input else 0  # the padding of "valid" layers
        ch = in_chans
        for name, *spec in STEM:
            if spec == ["M"]:
                self.add_module(name, nn.MaxPool2d(3, stride=2, padding=p))
                continue
            out, k, stride, valid = spec
            stride = 1 if small_input else stride
            self.add_module(name, conv(ch, out, k, stride, padding=p if valid else None))
            ch = out
        for name, block, ch, width in BLOCKS:
            if block in GRID_REDUCTIONS:
                self.add_module(name, block(ch, pad=p))
            else:
                self.add_module(name, block(ch) if width is None else block(ch, width))
            if name == "Mixed_6e" and aux_logits:  # registered where it reads the trunk
                self.AuxLogits = InceptionAux(768, num_classes, small_input)
        self.trunk = tuple(name for name, *_ in STEM + BLOCKS)
        if aux_logits:
            self.aux_taps = {"Mixed_6e": "AuxLogits"}
        else:
            self.AuxLogits = None
            self.aux_classifier_names = ()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(2048, num_classes)
        init_weights(self)


@register_model(
    family="inception",
    paper="Szegedy et al., Rethinking the Inception Architecture for Computer Vision "
    "(CVPR 2016)",
    year=2016,
    input_size=(3, 299, 299),
    **torchvision_ref(77.294, "Inception_V3", crop=299),
    recipe="inception_v3",
    small_input="stem convs stride 1 and padded, grid reductions padded: 32x32 -> 8x8 at the "
    "first Inception blocks, 2x2 at the last (ImageNet 299 -> 35 and 8); aux head skips its "
    "5x5/3 pool and pads its 5x5 conv",
    notes="torchvision key layout; factorised 1xn/nx1 convs; one aux head (AuxOutput in "
    "train mode); ImageNet stem needs >= 75x75, and >= 299x299 in train mode with the aux "
    "head; " + TV_WEIGHTS_NOTE,
)
def inception_v3(
    num_classes: int = 1000,
    in_chans: int = 3,
    *,
    aux_logits: bool = True,
    small_input: bool = False,
    dropout: float = 0.5,
    transform_input: bool = False,
) -> Inception3:
    """Inception-v3 (Szegedy et al. 2016), torchvision's state-dict layout.

    aux_logits: build the auxiliary head on the 17x17 grid (27,161,264 params with it,
        23,834,568 without, at 1000 classes).
    small_input: 28/32-pixel stem (see the module docstring); no parameter shapes change.
    dropout: before the final FC (torchvision's 0.5).
    transform_input: rescale ImageNet-normalised RGB inputs to [-1, 1] per channel first,
        which torchvision's TF-ported weights need (see layers.transform_input).
    """
    return Inception3(num_classes, in_chans, aux_logits, small_input, dropout, transform_input)
