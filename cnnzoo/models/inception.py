"""Inception-v3, Inception-v4 and Inception-ResNet-v2.

- Inception-v3: Szegedy et al., "Rethinking the Inception Architecture for Computer Vision",
  CVPR 2016 (arXiv:1512.00567). nxn convs factorised into 1xn + nx1, 5x5 into two 3x3, grid
  reductions that pool and convolve side by side, BN auxiliary head, 299x299 input.
  State-dict keys and shapes follow torchvision's `inception_v3` (its ImageNet weights load;
  they were ported from TensorFlow and need `transform_input=True`, as for GoogLeNet).
- Inception-v4 and Inception-ResNet-v2: Szegedy et al., "Inception-v4, Inception-ResNet and
  the Impact of Residual Connections on Learning", AAAI 2017 (arXiv:1602.07261). Block specs
  follow the paper's Figs. 3-9 and 16-19 as released in TF-slim (whose weights gave the
  published numbers): Inception-ResNet-v2 uses TF-slim's v3-like stem and 320/1088/2080
  channel widths; residual branches are scaled by 0.17/0.10/0.20 (paper: 0.1-0.3) before
  the sum to keep very wide residual nets stable.

small_input (all three): stride-1, padded stem convs and padded ("same") grid reductions,
so 32x32 reaches the first Inception blocks at 8x8 (ImageNet: 299 -> 35) and the last at
2x2 (ImageNet: 8x8). No parameter shapes change.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from cnnzoo.models.googlenet import (
    TV_WEIGHTS_NOTE,
    BasicConv2d,
    check_input,
    check_transform_input,
    transform_input,
)
from cnnzoo.models.layers import AuxOutput, Concat, init_weights
from cnnzoo.models.registry import register_model, torchvision_ref

conv = BasicConv2d  # conv -> BN (eps 1e-3) -> ReLU, torchvision's key names


def avg_pool(count_include_pad: bool = True) -> nn.AvgPool2d:
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=count_include_pad)


# ---------------------------------------------------------------- Inception-v3 (torchvision)
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


class Inception3(nn.Module):
    """Inception-v3 in torchvision's layout (the paper's Table 1, as ported from TF)."""

    # Smallest input side, by (small_input, aux heads running); the aux head's 5x5/3 pool
    # followed by a 5x5 valid conv needs a 17x17 grid at Mixed_6e.
    MIN_SIZE = {(False, False): 75, (False, True): 299, (True, False): 1, (True, True): 1}

    def __init__(self, num_classes=1000, in_chans=3, aux_logits=True, small_input=False,
                 dropout=0.5, transform_input=False):
        super().__init__()
        check_transform_input("inception_v3", transform_input, in_chans)
        self.in_chans, self.small_input = in_chans, small_input
        self.transform_input = transform_input
        s, p = (1, 1) if small_input else (2, 0)  # stem stride, "valid" padding
        self.Conv2d_1a_3x3 = conv(in_chans, 32, 3, stride=s, padding=p)
        self.Conv2d_2a_3x3 = conv(32, 32, 3, padding=p)
        self.Conv2d_2b_3x3 = conv(32, 64, 3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, padding=p)
        self.Conv2d_3b_1x1 = conv(64, 80, 1)
        self.Conv2d_4a_3x3 = conv(80, 192, 3, padding=p)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, padding=p)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288, pad=p)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.AuxLogits = InceptionAux(768, num_classes, small_input) if aux_logits else None
        self.Mixed_7a = InceptionD(768, pad=p)
        self.Mixed_7b = InceptionE(1280)
        self.Mixed_7c = InceptionE(2048)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(2048, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor | AuxOutput:
        with_aux = self.training and self.AuxLogits is not None
        check_input(self, x, self.MIN_SIZE[(self.small_input, with_aux)])
        if self.transform_input:
            x = transform_input(x)
        aux = None
        for name, module in self.named_children():  # registered in data-flow order
            if name == "AuxLogits":
                aux = module(x) if with_aux else None
            else:
                x = module(torch.flatten(x, 1) if name == "fc" else x)
        return AuxOutput(x, aux=(aux,)) if with_aux else x


# --------------------------------------------------------------------------- Inception-v4
def v4_stem(in_chans: int, p: int) -> nn.Sequential:
    """Paper Fig. 3: 299x299x3 -> 35x35x384, pooling and strided convs side by side."""
    s = 1 if p else 2
    return nn.Sequential(
        conv(in_chans, 32, 3, stride=s, padding=p),
        conv(32, 32, 3, padding=p),
        conv(32, 64, 3),
        Concat(pool=nn.MaxPool2d(3, 2, padding=p), conv=conv(64, 96, 3, stride=2, padding=p)),
        Concat(
            branch0=nn.Sequential(conv(160, 64, 1), conv(64, 96, 3, padding=p)),
            branch1=nn.Sequential(
                conv(160, 64, 1), conv(64, 64, (1, 7)), conv(64, 64, (7, 1)),
                conv(64, 96, 3, padding=p),
            ),
        ),
        Concat(conv=conv(192, 192, 3, stride=2, padding=p), pool=nn.MaxPool2d(3, 2, padding=p)),
    )


def v4_block_a() -> Concat:
    """Inception-A, 35x35x384 (paper Fig. 4)."""
    return Concat(
        branch0=conv(384, 96, 1),
        branch1=nn.Sequential(conv(384, 64, 1), conv(64, 96, 3)),
        branch2=nn.Sequential(conv(384, 64, 1), conv(64, 96, 3), conv(96, 96, 3)),
        branch3=nn.Sequential(avg_pool(False), conv(384, 96, 1)),
    )


def reduction_a(in_ch: int, k: int, l: int, m: int, n: int, p: int) -> Concat:
    """Reduction-A, 35 -> 17 (paper Fig. 7; k, l, m, n from its Table 1)."""
    return Concat(
        branch0=conv(in_ch, n, 3, stride=2, padding=p),
        branch1=nn.Sequential(conv(in_ch, k, 1), conv(k, l, 3), conv(l, m, 3, 2, padding=p)),
        branch2=nn.MaxPool2d(3, 2, padding=p),
    )


def v4_block_b() -> Concat:
    """Inception-B, 17x17x1024 (paper Fig. 5)."""
    return Concat(
        branch0=conv(1024, 384, 1),
        branch1=nn.Sequential(conv(1024, 192, 1), conv(192, 224, (1, 7)), conv(224, 256, (7, 1))),
        branch2=nn.Sequential(
            conv(1024, 192, 1), conv(192, 192, (7, 1)), conv(192, 224, (1, 7)),
            conv(224, 224, (7, 1)), conv(224, 256, (1, 7)),
        ),
        branch3=nn.Sequential(avg_pool(False), conv(1024, 128, 1)),
    )


def v4_reduction_b(p: int) -> Concat:
    """Reduction-B, 17 -> 8 (paper Fig. 8)."""
    return Concat(
        branch0=nn.Sequential(conv(1024, 192, 1), conv(192, 192, 3, 2, padding=p)),
        branch1=nn.Sequential(
            conv(1024, 256, 1), conv(256, 256, (1, 7)), conv(256, 320, (7, 1)),
            conv(320, 320, 3, 2, padding=p),
        ),
        branch2=nn.MaxPool2d(3, 2, padding=p),
    )


def split(c_in: int, c_out: int) -> Concat:
    """Parallel 1x3 and 3x1 convs on the same input (the widened 8x8 outputs)."""
    return Concat(a=conv(c_in, c_out, (1, 3)), b=conv(c_in, c_out, (3, 1)))


def v4_block_c() -> Concat:
    """Inception-C, 8x8x1536 (paper Fig. 6)."""
    return Concat(
        branch0=conv(1536, 256, 1),
        branch1=nn.Sequential(conv(1536, 384, 1), split(384, 256)),
        branch2=nn.Sequential(
            conv(1536, 384, 1), conv(384, 448, (3, 1)), conv(448, 512, (1, 3)), split(512, 256)
        ),
        branch3=nn.Sequential(avg_pool(False), conv(1536, 256, 1)),
    )


class Trunk(nn.Module):
    """A network whose children, in registration order, are its forward pass."""

    def forward(self, x):
        check_input(self, x, self.MIN_SIZE[self.small_input])
        for module in self.children():
            x = module(torch.flatten(x, 1) if module is self.fc else x)
        return x


class InceptionV4(Trunk):
    """Paper Fig. 9: stem, 4x A, Reduction-A, 7x B, Reduction-B, 3x C, pool, dropout, FC."""

    MIN_SIZE = {False: 75, True: 1}  # by small_input

    def __init__(self, num_classes=1000, in_chans=3, small_input=False, dropout=0.2):
        super().__init__()
        self.in_chans, self.small_input = in_chans, small_input
        p = 1 if small_input else 0
        self.stem = v4_stem(in_chans, p)
        self.blocks_a = nn.Sequential(*[v4_block_a() for _ in range(4)])
        self.reduction_a = reduction_a(384, 192, 224, 256, 384, p)
        self.blocks_b = nn.Sequential(*[v4_block_b() for _ in range(7)])
        self.reduction_b = v4_reduction_b(p)
        self.blocks_c = nn.Sequential(*[v4_block_c() for _ in range(3)])
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)  # paper: keep probability 0.8
        self.fc = nn.Linear(1536, num_classes)
        init_weights(self)


# ------------------------------------------------------------------- Inception-ResNet-v2
class ResidualInception(nn.Module):
    """x + scale * (1x1 linear conv of the concatenated branches), then ReLU (paper
    Figs. 16, 17, 19). Scaling the residual by 0.1-0.3 stopped very wide nets from dying
    early in training (paper Sec. 3.3)."""

    def __init__(self, branches: Concat, mid_ch: int, ch: int, scale: float, relu=True):
        super().__init__()
        self.scale = scale
        self.branches = branches
        self.up = nn.Conv2d(mid_ch, ch, 1)  # linear, with bias: no BN on the sum's input
        self.act = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x):
        return self.act(x + self.scale * self.up(self.branches(x)))

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


def block35(scale: float) -> ResidualInception:
    """Inception-ResNet-A, 35x35x320 (paper Fig. 16)."""
    return ResidualInception(
        Concat(
            branch0=conv(320, 32, 1),
            branch1=nn.Sequential(conv(320, 32, 1), conv(32, 32, 3)),
            branch2=nn.Sequential(conv(320, 32, 1), conv(32, 48, 3), conv(48, 64, 3)),
        ),
        128, 320, scale,
    )


def block17(scale: float) -> ResidualInception:
    """Inception-ResNet-B, 17x17x1088 (paper Fig. 17)."""
    return ResidualInception(
        Concat(
            branch0=conv(1088, 192, 1),
            branch1=nn.Sequential(
                conv(1088, 128, 1), conv(128, 160, (1, 7)), conv(160, 192, (7, 1))
            ),
        ),
        384, 1088, scale,
    )


def block8(scale: float, relu: bool = True) -> ResidualInception:
    """Inception-ResNet-C, 8x8x2080 (paper Fig. 19)."""
    return ResidualInception(
        Concat(
            branch0=conv(2080, 192, 1),
            branch1=nn.Sequential(
                conv(2080, 192, 1), conv(192, 224, (1, 3)), conv(224, 256, (3, 1))
            ),
        ),
        448, 2080, scale, relu,
    )


def irv2_stem(in_chans: int, p: int) -> nn.Sequential:
    """TF-slim's stem (v3-like) ending in a 35x35x320 Inception block ("Mixed_5b")."""
    s = 1 if p else 2
    return nn.Sequential(
        conv(in_chans, 32, 3, stride=s, padding=p),
        conv(32, 32, 3, padding=p),
        conv(32, 64, 3),
        nn.MaxPool2d(3, 2, padding=p),
        conv(64, 80, 1),
        conv(80, 192, 3, padding=p),
        nn.MaxPool2d(3, 2, padding=p),
        Concat(
            branch0=conv(192, 96, 1),
            branch1=nn.Sequential(conv(192, 48, 1), conv(48, 64, 5)),
            branch2=nn.Sequential(conv(192, 64, 1), conv(64, 96, 3), conv(96, 96, 3)),
            branch3=nn.Sequential(avg_pool(False), conv(192, 64, 1)),
        ),
    )


def irv2_reduction_b(p: int) -> Concat:
    """Inception-ResNet-v2 Reduction-B, 17 -> 8 (paper Fig. 18)."""
    return Concat(
        branch0=nn.Sequential(conv(1088, 256, 1), conv(256, 384, 3, 2, padding=p)),
        branch1=nn.Sequential(conv(1088, 256, 1), conv(256, 288, 3, 2, padding=p)),
        branch2=nn.Sequential(
            conv(1088, 256, 1), conv(256, 288, 3), conv(288, 320, 3, 2, padding=p)
        ),
        branch3=nn.MaxPool2d(3, 2, padding=p),
    )


class InceptionResNetV2(Trunk):
    """Stem, 10x A, Reduction-A, 20x B, Reduction-B, 9x C + one unscaled linear C, 1x1 conv
    to 1536, pool, dropout, FC (paper Fig. 15 with TF-slim's widths)."""

    MIN_SIZE = {False: 75, True: 1}  # by small_input

    def __init__(self, num_classes=1000, in_chans=3, small_input=False, dropout=0.2,
                 scales=(0.17, 0.10, 0.20)):
        super().__init__()
        self.in_chans, self.small_input = in_chans, small_input
        p = 1 if small_input else 0
        sa, sb, sc = scales
        self.stem = irv2_stem(in_chans, p)
        self.blocks_a = nn.Sequential(*[block35(sa) for _ in range(10)])
        self.reduction_a = reduction_a(320, 256, 256, 384, 384, p)
        self.blocks_b = nn.Sequential(*[block17(sb) for _ in range(20)])
        self.reduction_b = irv2_reduction_b(p)
        self.blocks_c = nn.Sequential(*[block8(sc) for _ in range(9)], block8(1.0, relu=False))
        self.conv_head = conv(2080, 1536, 1)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)  # paper: keep probability 0.8
        self.fc = nn.Linear(1536, num_classes)
        init_weights(self)


_V4_PAPER = (
    "Szegedy et al., Inception-v4, Inception-ResNet and the Impact of Residual Connections "
    "on Learning (AAAI 2017, arXiv 2016)"
)
_V4_TABLE2 = ("Szegedy et al. 2016, Table 2: single model, single crop 299 "
              "(ILSVRC 2012 validation)")
_SMALL = (
    "stem convs stride 1 and padded, grid reductions padded: 32x32 -> 8x8 at the first "
    "Inception blocks, 2x2 at the last (ImageNet 299 -> 35 and 8)"
)


@register_model(
    family="inception",
    paper="Szegedy et al., Rethinking the Inception Architecture for Computer Vision "
    "(CVPR 2016)",
    year=2016,
    input_size=(3, 299, 299),
    **torchvision_ref(77.294, "Inception_V3", crop=299),
    recipe="inception_v3",
    small_input=_SMALL + "; aux head skips its 5x5/3 pool and pads its 5x5 conv",
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
        which torchvision's TF-ported weights need (see googlenet.transform_input).
    """
    return Inception3(num_classes, in_chans, aux_logits, small_input, dropout, transform_input)


@register_model(
    family="inception",
    paper=_V4_PAPER,
    year=2016,
    input_size=(3, 299, 299),
    recipe="inception_v3",
    small_input=_SMALL,
    ref_top1_acc=80.0,
    ref_source=_V4_TABLE2,
    notes="pure Inception (no residuals); ImageNet stem needs >= 75x75",
)
def inception_v4(
    num_classes: int = 1000, in_chans: int = 3, *, small_input: bool = False, dropout: float = 0.2
) -> InceptionV4:
    """Inception-v4 (Szegedy et al. 2016): 42,679,816 params at 1000 classes, as timm's port of
    the TF-slim release; small_input as in the module doc."""
    return InceptionV4(num_classes, in_chans, small_input, dropout)


@register_model(
    family="inception",
    paper=_V4_PAPER,
    year=2016,
    input_size=(3, 299, 299),
    recipe="inception_v3",
    small_input=_SMALL,
    ref_top1_acc=80.1,
    ref_source=_V4_TABLE2,
    notes="residual Inception blocks scaled 0.17/0.10/0.20 (knob `scales`); TF-slim widths "
    "and stem; ImageNet stem needs >= 75x75",
)
def inception_resnet_v2(
    num_classes: int = 1000,
    in_chans: int = 3,
    *,
    small_input: bool = False,
    dropout: float = 0.2,
    scales: tuple[float, float, float] = (0.17, 0.10, 0.20),
) -> InceptionResNetV2:
    """Inception-ResNet-v2 (Szegedy et al. 2016): 55,843,464 params at 1000 classes, as timm's
    port of the TF-slim release.

    scales: residual scaling of the A / B / C blocks (paper: "between 0.1 and 0.3").
    small_input: 28/32-pixel stem (see the module docstring).
    """
    return InceptionResNetV2(num_classes, in_chans, small_input, dropout, scales)
