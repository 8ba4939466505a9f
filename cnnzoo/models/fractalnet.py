"""FractalNet: Larsson, Maire, Shakhnarovich. FractalNet: Ultra-Deep Neural Networks without
Residuals. ICLR 2017.

A block is the truncated fractal f_C of one expansion rule:

    f_1(z) = conv(z)
    f_{C+1}(z) = join(f_C(f_C(z)), conv(z))

where conv is conv3x3-BN-ReLU and join is the element-wise mean of its (active) inputs. A
join that meets another join's inputs merges them into one (the paper's Fig. 1): in a C=4
block the joins take 2, 3, 2 and 4 inputs. Column k (k = 0 the shallowest) holds 2^k convs,
so a block has 2^C - 1 convs and its deepest path 2^(C-1); B blocks, each followed by a 2x2
max-pool, give a network B * 2^(C-1) convs deep. No shortcut anywhere passes a signal on
untransformed.

Drop-path (sec 3.1), sampled once per mini-batch (not per sample), as the paper reads:
- local: every join drops each input with probability p (0.15) but keeps at least one;
- global: one column is chosen for the whole network and only its convs run;
training mixes them 50/50 per mini-batch. Eval uses every path (deterministic); setting
`model.eval_column = k` evaluates column k alone (the paper's "deepest column" numbers).

CIFAR layout (sec 4): B=5 blocks of 64, 128, 256, 512, 512 filters, per-block dropout
(0, 0.1, 0.2, 0.3, 0.4) in the regularised runs. Depth is B * 2^(C-1), so the paper's
20-layer CIFAR net has C=3 columns (also the authors' Caffe generator, gustavla/fractalnet:
COLUMNS = 3 with those filters): `fractalnet20`. C=4 gives the 40-layer net of Fig. 1:
`fractalnet40`, built here with the same widths (76.1M parameters). The paper's Table 1
"40 layers, 22.9M params" net is a thinner variant (footnote: (128, 64, 32, 16) channels
across the columns, linear projections before joins, mixed 1x1/3x3 filters) not built here.

Backbone vocabulary: the stages are the five pools (`pools.0` .. `pools.4`, each block's
output pooled); forward_features is the last of them, pre_logits its global average.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnzoo.errors import CnnzooError
from cnnzoo.models.backbone import Backbone
from cnnzoo.models.layers import ConvBnAct, init_weights
from cnnzoo.models.registry import register_model

PAPER = "Larsson et al., FractalNet: Ultra-Deep Neural Networks without Residuals (ICLR 2017)"
CIFAR_CHANNELS = (64, 128, 256, 512, 512)
PAPER_DROPOUT = (0.0, 0.1, 0.2, 0.3, 0.4)


class FractalNetConfigError(CnnzooError, ValueError):
    """A FractalNet setting outside what the paper defines (columns < 1, p outside [0, 1))."""


def join(inputs: list[torch.Tensor], drop_prob: float = 0.0) -> tuple[torch.Tensor, list[bool]]:
    """Element-wise mean of the kept inputs; each is dropped with `drop_prob`, but one always
    survives. Returns the mean and which inputs were kept."""
    keep = [True] * len(inputs)
    if drop_prob > 0:
        keep = (torch.rand(len(inputs), device="cpu") >= drop_prob).tolist()
        if not any(keep):
            keep[int(torch.randint(len(inputs), (), device="cpu"))] = True
    kept = [x for x, k in zip(inputs, keep) if k]
    return torch.stack(kept).mean(0) if len(kept) > 1 else kept[0], keep


class FractalBlock(nn.Module):
    """f_C between two pools: `columns[k]` is column k's chain of 2^k conv units."""

    def __init__(self, cin: int, cout: int, num_columns: int, dropout: float = 0.0):
        super().__init__()

        def unit(c: int) -> nn.Module:
            conv = ConvBnAct(c, cout, 3)
            return nn.Sequential(conv, nn.Dropout(dropout)) if dropout > 0 else conv

        self.num_columns = num_columns
        self.columns = nn.ModuleList(
            nn.Sequential(*[unit(cin if j == 0 else cout) for j in range(2**k)])
            for k in range(num_columns)
        )
        self.last_joins: list[list[bool]] = []  # per join, which inputs were kept (train)

    def forward(self, x: torch.Tensor, drop_prob: float = 0.0,
                column: int | None = None) -> torch.Tensor:
        self.last_joins = []
        if column is not None:  # global drop-path: the chosen column alone
            return self.columns[column](x)
        convs = [iter(col) for col in self.columns]  # each column's units, used in order
        return self._join(self._fractal(self.num_columns, x, convs, drop_prob), drop_prob)

    def _fractal(self, d: int, z: torch.Tensor, convs, drop_prob: float) -> list[torch.Tensor]:
        """f_d(z) as the list of outputs its final join would average (deepest first)."""
        shallow = next(convs[self.num_columns - d])(z)  # this sub-fractal's 1-conv column
        if d == 1:
            return [shallow]
        inner = self._join(self._fractal(d - 1, z, convs, drop_prob), drop_prob)
        return self._fractal(d - 1, inner, convs, drop_prob) + [shallow]

    def _join(self, inputs: list[torch.Tensor], drop_prob: float) -> torch.Tensor:
        if len(inputs) == 1:  # f_1's output: nothing to join
            return inputs[0]
        out, keep = join(inputs, drop_prob if self.training else 0.0)
        self.last_joins.append(keep)
        return out


class FractalNet(Backbone):
    """B fractal blocks, each followed by a 2x2 max-pool, then global pool and FC.

    The pools use ceil_mode so 28-pixel inputs survive five halvings (28 -> 1); on 32x32
    inputs they are the paper's plain 2x2 pools.
    """

    classifier_name = "fc"

    def __init__(self, num_classes: int = 10, in_chans: int = 3, *, columns: int = 3,
                 channels: tuple[int, ...] = CIFAR_CHANNELS, local_drop: float = 0.15,
                 global_ratio: float = 0.5, dropout: float | tuple[float, ...] = 0.0):
        super().__init__()
        if columns < 1:
            raise FractalNetConfigError(f"columns must be >= 1, got {columns}")
        if not 0.0 <= local_drop < 1.0:
            raise FractalNetConfigError(f"local_drop must be in [0, 1), got {local_drop}")
        if not 0.0 <= global_ratio <= 1.0:
            raise FractalNetConfigError(f"global_ratio must be in [0, 1], got {global_ratio}")
        drops = (dropout,) * len(channels) if isinstance(dropout, (int, float)) else dropout
        if len(drops) != len(channels):
            raise FractalNetConfigError(
                f"dropout needs one rate per block ({len(channels)}), got {len(drops)}")
        self.num_columns = columns
        self.local_drop = local_drop
        self.global_ratio = global_ratio
        self.eval_column: int | None = None
        self.last_mode: tuple[str, int | None] = ("eval", None)
        cins = (in_chans,) + tuple(channels[:-1])
        self.blocks = nn.ModuleList(
            FractalBlock(ci, co, columns, p) for ci, co, p in zip(cins, channels, drops)
        )
        self.pools = nn.ModuleList(nn.MaxPool2d(2, ceil_mode=True) for _ in channels)
        self.fc = nn.Linear(channels[-1], num_classes)
        self.in_chans = in_chans
        self.stage_names = tuple(f"pools.{i}" for i in range(len(channels)))
        init_weights(self)

    @property
    def depth(self) -> int:
        """Convs on the deepest path: B * 2^(C-1)."""
        return len(self.blocks) * 2 ** (self.num_columns - 1)

    def _plan(self) -> tuple[str, int | None]:
        """This mini-batch's drop-path: ("global", column) or ("local", None)."""
        if not self.training:
            return ("column", self.eval_column) if self.eval_column is not None else ("eval", None)
        if self.num_columns > 1 and float(torch.rand((), device="cpu")) < self.global_ratio:
            return "global", int(torch.randint(self.num_columns, (), device="cpu"))
        return "local", None

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        mode, column = self.last_mode = self._plan()
        for block, pool in zip(self.blocks, self.pools):
            x = pool(block(x, self.local_drop if mode == "local" else 0.0, column))
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return x if pre_logits else self.fc(x)


def _register(name: str, columns: int, notes: str):
    def build(num_classes=10, in_chans=3, *, local_drop=0.15, global_ratio=0.5, dropout=0.0):
        return FractalNet(num_classes, in_chans, columns=columns, local_drop=local_drop,
                          global_ratio=global_ratio, dropout=dropout)

    depth = 5 * 2 ** (columns - 1)
    build.__name__ = build.__qualname__ = name
    build.__doc__ = (
        f"{name}: CIFAR FractalNet, B=5 blocks, C={columns} columns, {depth} convs on the "
        f"deepest path ({PAPER}). local_drop: each join input's drop probability; "
        "global_ratio: share of mini-batches that keep a single column (0 = local only); "
        f"dropout: one rate, or one per block (the paper's {PAPER_DROPOUT}).")
    return register_model(family="fractalnet", paper=PAPER, year=2017, input_size=(3, 32, 32),
                          recipe="fractalnet", notes=notes, name=name)(build)


fractalnet20 = _register(
    "fractalnet20", 3,
    "B=5, C=3: the paper's 20-layer CIFAR net (B * 2^(C-1) = 20; C=4 would be 40 layers). "
    "The paper's table gives 38.6M parameters; this layout (every column widening at its "
    "first conv, as in the authors' generator) has 33.7M (see tests).")
fractalnet40 = _register(
    "fractalnet40", 4,
    "B=5, C=4: the 40-layer layout of the paper's Fig. 1 (B * 2^(C-1) = 40), with the 20-layer "
    "net's widths: 76.1M parameters. Not the thinner 22.9M-parameter 40-layer net of the "
    "paper's Table 1 (per-column widths 128/64/32/16, projections before joins).")
