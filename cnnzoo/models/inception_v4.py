"""Inception-v4 and Inception-ResNet-v2: Szegedy, Ioffe, Vanhoucke & Alemi, "Inception-v4,
Inception-ResNet and the Impact of Residual Connections on Learning", AAAI 2017
(arXiv:1602.07261).

Block specs follow the paper's Figs. 3-9 and 16-19 as released in TF-slim (whose weights gave
the published numbers): Inception-ResNet-v2 uses TF-slim's v3-like stem and 320/1088/2080
channel widths; residual branches are scaled by 0.17/0.10/0.20 (paper: 0.1-0.3) before the
sum to keep very wide residual nets stable. How many blocks of each kind (Figs. 9 and 15)
and Reduction-A's filter counts (Table 1) are the tables `BLOCKS` and `REDUCTION_A`.

small_input (both): stride-1, padded stem convs and padded ("same") grid reductions, so
32x32 reaches the first Inception blocks at 8x8 (ImageNet: 299 -> 35) and the last at 2x2
(ImageNet: 8x8). No parameter shapes change.
"""

from __future__ import annotations

import torch.nn as nn

from cnnzoo.models.layers import BasicConv2d, Concat, InceptionTrunk, init_weights
from cnnzoo.models.registry import register_model

conv = BasicConv2d  # conv -> BN (eps 1e-3) -> ReLU, as in the TF-slim release

# Paper Figs. 9 and 15: the blocks of each kind, between the stem and the pool. The 10th
# Inception-ResNet-C is TF-slim's unscaled one without ReLU.
BLOCKS = {"inception_v4": {"a": 4, "b": 7, "c": 3},
          "inception_resnet_v2": {"a": 10, "b": 20, "c": 10}}
# Paper Table 1: the filter counts k, l, m, n of Reduction-A (Fig. 7).
REDUCTION_A = {"inception_v4": (192, 224, 256, 384),
               "inception_resnet_v2": (256, 256, 384, 384)}


def avg_pool() -> nn.AvgPool2d:
    # TF-slim's 3x3/1 "SAME" branch pool averages over the real pixels only
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)


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
        branch3=nn.Sequential(avg_pool(), conv(384, 96, 1)),
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
        branch3=nn.Sequential(avg_pool(), conv(1024, 128, 1)),
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
        branch3=nn.Sequential(avg_pool(), conv(1536, 256, 1)),
    )


class InceptionV4(InceptionTrunk):
    """Paper Fig. 9: stem, 4x A, Reduction-A, 7x B, Reduction-B, 3x C, pool, dropout, FC.

    forward_features is the last Inception-C's 8x8x1536 map (at 299), pre_logits its
    average after the dropout: what `fc` takes.
    """

    trunk = ("stem", "blocks_a", "reduction_a", "blocks_b", "reduction_b", "blocks_c")
    stage_names = ("stem.2", "stem.3", "blocks_a", "blocks_b", "blocks_c")  # timm's
    MIN_SIZE = {False: 75, True: 1}  # by small_input

    def __init__(self, num_classes=1000, in_chans=3, small_input=False, dropout=0.2):
        super().__init__()
        self.in_chans, self.small_input = in_chans, small_input
        self.min_input_size = self.MIN_SIZE[small_input]
        p = 1 if small_input else 0
        n = BLOCKS["inception_v4"]
        self.stem = v4_stem(in_chans, p)
        self.blocks_a = nn.Sequential(*[v4_block_a() for _ in range(n["a"])])
        self.reduction_a = reduction_a(384, *REDUCTION_A["inception_v4"], p)
        self.blocks_b = nn.Sequential(*[v4_block_b() for _ in range(n["b"])])
        self.reduction_b = v4_reduction_b(p)
        self.blocks_c = nn.Sequential(*[v4_block_c() for _ in range(n["c"])])
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
            branch3=nn.Sequential(avg_pool(), conv(192, 64, 1)),
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


class InceptionResNetV2(InceptionTrunk):
    """Stem, 10x A, Reduction-A, 20x B, Reduction-B, 9x C + one unscaled linear C, 1x1 conv
    to 1536, pool, dropout, FC (paper Fig. 15 with TF-slim's widths).

    forward_features is conv_head's 8x8x1536 map (at 299), pre_logits its average after the
    dropout: what `fc` takes.
    """

    trunk = ("stem", "blocks_a", "reduction_a", "blocks_b", "reduction_b", "blocks_c",
             "conv_head")
    # timm's stages; at stride 4 the 1x1 conv to 80 (73x73 at 299) rather than the valid
    # 3x3 after it, whose 71x71 is too far from 299 / 4 for a stride-4 map
    stage_names = ("stem.2", "stem.4", "blocks_a", "blocks_b", "conv_head")
    MIN_SIZE = {False: 75, True: 1}  # by small_input

    def __init__(self, num_classes=1000, in_chans=3, small_input=False, dropout=0.2,
                 scales=(0.17, 0.10, 0.20)):
        super().__init__()
        self.in_chans, self.small_input = in_chans, small_input
        self.min_input_size = self.MIN_SIZE[small_input]
        p = 1 if small_input else 0
        sa, sb, sc = scales
        n = BLOCKS["inception_resnet_v2"]
        self.stem = irv2_stem(in_chans, p)
        self.blocks_a = nn.Sequential(*[block35(sa) for _ in range(n["a"])])
        self.reduction_a = reduction_a(320, *REDUCTION_A["inception_resnet_v2"], p)
        self.blocks_b = nn.Sequential(*[block17(sb) for _ in range(n["b"])])
        self.reduction_b = irv2_reduction_b(p)
        self.blocks_c = nn.Sequential(*[block8(sc) for _ in range(n["c"] - 1)],
                                      block8(1.0, relu=False))
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
