"""LeNet-5: LeCun, Bottou, Bengio & Haffner, "Gradient-based learning applied to document
recognition", Proc. IEEE 1998.

Two forms:
- `lenet5_1998`: the paper's network. Scaled tanh 1.7159*tanh(2x/3) (Appendix A), trainable
  subsampling S2/S4 (sum of a 2x2 window times one coefficient per map, plus a bias, then the
  squashing function), C3's partial connection table (Table I), C5 = 120 5x5 maps, F6 = 84
  tanh units. The output layer is a Linear layer over F6, not the paper's Euclidean RBF units
  (cross-entropy on logits is how the network is trained today).
- `lenet5`: the common modern form (ReLU, max-pooling, full C3), same widths.

Both take 32x32 inputs. Smaller ones (MNIST / Fashion-MNIST 28x28) are zero-padded to 32x32,
as LeCun et al. did for MNIST (the 20x20 digits centred in a 28x28 field, padded to 32x32).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnzoo.errors import CnnzooError, ShapeError
from cnnzoo.models.layers import LayerStack, init_weights
from cnnzoo.models.registry import register_model

# Table I of the paper: which S2 maps (0-5) each of C3's 16 maps sees.
C3_TABLE: list[tuple[int, ...]] = [
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),  # 3 contiguous
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),  # 4
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),  # 4 discontinuous
    (0, 1, 2, 3, 4, 5),  # all six
]


class ScaledTanh(nn.Module):
    """f(a) = A tanh(S a) with A = 1.7159, S = 2/3 (LeCun et al. 1998, Appendix A)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.7159 * torch.tanh(x * (2.0 / 3.0))


class Subsample(nn.Module):
    """S2/S4: each map's 2x2 window is summed, times a trainable coefficient, plus a bias."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), 0.25))  # 0.25: starts as a mean
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        summed = F.avg_pool2d(x, 2) * 4.0
        return summed * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class PartialConv(nn.Module):
    """C3 with the paper's connection table, built from one grouped conv per fan-in size.

    Each output map sees only its listed input maps; gathering those maps side by side lets a
    grouped conv compute all maps with the same fan-in at once. Parameters are exactly the
    paper's: 6*(3*25+1) + 9*(4*25+1) + (6*25+1) = 1,516.
    """

    def __init__(self, table: list[tuple[int, ...]], kernel_size: int = 5):
        super().__init__()
        self.table = table
        self.gather: list[list[int]] = []  # input maps each grouped conv reads, side by side
        self.convs = nn.ModuleList()
        order: list[int] = []  # output maps in the order the grouped convs produce them
        for fan_in in sorted({len(t) for t in table}):
            maps = [j for j, t in enumerate(table) if len(t) == fan_in]
            self.gather.append([i for j in maps for i in table[j]])
            self.convs.append(
                nn.Conv2d(fan_in * len(maps), len(maps), kernel_size, groups=len(maps))
            )
            order += maps
        # Plain index lists, not buffers: nothing to lose when a model built on the meta
        # device is materialised later.
        self.inverse = sorted(range(len(order)), key=order.__getitem__)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [conv(x[:, idx]) for conv, idx in zip(self.convs, self.gather)]
        return torch.cat(outs, 1)[:, self.inverse]


class PadTo(nn.Module):
    """Zero-pads inputs smaller than `size` (28x28 MNIST -> 32x32), centred, as LeCun et al.
    Larger inputs are LeNet5.check_input_size's to refuse (at build time, not here)."""

    def __init__(self, size: int = 32):
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        dh, dw = max(self.size - h, 0), max(self.size - w, 0)
        if dh == 0 and dw == 0:
            return x
        return F.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))

    def extra_repr(self) -> str:
        return f"size={self.size}"


class LeNet5(LayerStack):
    """C1-S2-C3-S4-C5-F6-output as named layers (`pad`, `c1`, `act1`, ...).

    The features are S4's 16 5x5 maps (after the squashing): C5's 5x5 kernels see all of
    them, which "amounts to a full connection between S4 and C5" (paper Sec. II-B), so C5
    starts the head. pre_logits is F6's 84 activations, what the output layer takes; the
    stages are S2's and S4's maps.
    """

    SIZE = 32  # the input side C1 is designed for; smaller inputs are zero-padded to it

    def __init__(self, layers: OrderedDict, in_chans: int, stages: tuple[str, str]):
        super().__init__(layers, features_end=stages[-1], classifier_name="output",
                         stage_names=stages, in_chans=in_chans)

    def check_input_size(self, input_size) -> None:
        super().check_input_size(input_size)
        _, h, w = input_size
        if h > self.SIZE or w > self.SIZE:
            raise ShapeError(f"LeNet-5 takes inputs up to {self.SIZE}x{self.SIZE} (C5 must see "
                             f"a 5x5 map); got {h}x{w}")


_SMALL = "Natively 32x32; 28x28 inputs are zero-padded to 32x32 as LeCun et al. did for MNIST"


@register_model(
    family="lenet",
    paper="LeCun et al., Gradient-based learning applied to document recognition, Proc. IEEE 1998",
    year=1998,
    input_size=(1, 32, 32),
    recipe="lenet",
    small_input="",
    notes="The 1998 form: scaled tanh, trainable subsampling S2/S4, C3 partial connection "
    "table (c3_table=True), C5 120 maps, F6 84 units; a Linear output replaces the paper's RBF "
    "units. " + _SMALL + ".",
)
def lenet5_1998(
    num_classes: int = 10, in_chans: int = 1, *, c3_table: bool = True, act: str = "scaled_tanh"
) -> nn.Module:
    """LeNet-5 as in LeCun et al. 1998: C1-S2-C3-S4-C5-F6-output, ~60K parameters.

    c3_table: C3's sparse connection table from the paper (1,516 params) or a full 6->16
    conv (2,416). act: "scaled_tanh" (the paper's 1.7159 tanh(2x/3)) or "tanh".
    """
    acts = {"scaled_tanh": ScaledTanh, "tanh": nn.Tanh}
    if act not in acts:
        raise CnnzooError(f"lenet5_1998: act must be one of {', '.join(acts)}, got {act!r}")
    Act = acts[act]
    c3 = PartialConv(C3_TABLE) if c3_table else nn.Conv2d(6, 16, 5)
    model = LeNet5(OrderedDict([
        ("pad", PadTo(LeNet5.SIZE)),
        ("c1", nn.Conv2d(in_chans, 6, 5)), ("act1", Act()),  # 6@28x28
        ("s2", Subsample(6)), ("act2", Act()),  # 6@14x14
        ("c3", c3), ("act3", Act()),  # 16@10x10
        ("s4", Subsample(16)), ("act4", Act()),  # 16@5x5
        ("c5", nn.Conv2d(16, 120, 5)), ("act5", Act()),  # 120@1x1
        ("flatten", nn.Flatten()),
        ("f6", nn.Linear(120, 84)), ("act6", Act()),
        ("output", nn.Linear(84, num_classes)),
    ]), in_chans, stages=("act2", "act4"))  # S2, S4 after their squashing
    return init_weights(model, "tanh")  # Xavier for tanh nets (the lectures' rule)


@register_model(
    family="lenet",
    paper="LeCun et al., Gradient-based learning applied to document recognition, Proc. IEEE 1998",
    year=1998,
    input_size=(1, 32, 32),
    recipe="lenet",
    small_input="",
    notes="The common modern form: ReLU, 2x2 max-pooling, full C3, same widths as 1998. "
    + _SMALL + ".",
)
def lenet5(num_classes: int = 10, in_chans: int = 1) -> nn.Module:
    """LeNet-5 as trained today: conv5-6, pool, conv5-16, pool, conv5-120, fc84, fc10 (ReLU)."""
    model = LeNet5(OrderedDict([
        ("pad", PadTo(LeNet5.SIZE)),
        ("c1", nn.Conv2d(in_chans, 6, 5)), ("act1", nn.ReLU(inplace=True)),
        ("s2", nn.MaxPool2d(2)),
        ("c3", nn.Conv2d(6, 16, 5)), ("act3", nn.ReLU(inplace=True)),
        ("s4", nn.MaxPool2d(2)),
        ("c5", nn.Conv2d(16, 120, 5)), ("act5", nn.ReLU(inplace=True)),
        ("flatten", nn.Flatten()),
        ("f6", nn.Linear(120, 84)), ("act6", nn.ReLU(inplace=True)),
        ("output", nn.Linear(84, num_classes)),
    ]), in_chans, stages=("s2", "s4"))
    return init_weights(model, "relu")  # He init for ReLU nets
