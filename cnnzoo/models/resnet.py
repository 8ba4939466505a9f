"""ResNet and its descendants, from one set of blocks.

- He, Zhang, Ren, Sun. Deep Residual Learning for Image Recognition. CVPR 2016 (arXiv 2015):
  plain vs residual nets, basic and bottleneck blocks, ImageNet depths 18-152, CIFAR 6n+2.
- He, Zhang, Ren, Sun. Identity Mappings in Deep Residual Networks. ECCV 2016:
  pre-activation (BN-ReLU-conv) blocks, a clean identity path, final BN-ReLU before pooling.
- Zagoruyko, Komodakis. Wide Residual Networks. BMVC 2016: fewer, k-times wider blocks.
- Xie, Girshick, Dollar, Tu, He. Aggregated Residual Transformations (ResNeXt). CVPR 2017:
  cardinality = groups of the bottleneck's 3x3 conv, `width_per_group` channels each.
- Huang, Sun, Liu, Sedra, Weinberger. Deep Networks with Stochastic Depth. ECCV 2016:
  the `stochastic_depth` knob of every residual builder here: False / 0 (the default) = off,
  True = the paper's linear decay to p_L = 0.5, a float p_L in (0, 1) = decay to that p_L.

ImageNet networks (resnet*, resnext*, wide_resnet*) use torchvision's module names, so its
published weights load with `strict=True` (conv1, bn1, relu, maxpool, layer1..4, fc; blocks
with conv1/bn1/conv2/bn2(/conv3/bn3) and downsample.0/.1). Each ReLU call site has its own
module (relu1, relu2, ... in a block); activations hold no parameters, so the keys are
torchvision's all the same.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnzoo.errors import CnnzooError
from cnnzoo.models.backbone import Backbone
from cnnzoo.models.layers import DropPath, init_weights
from cnnzoo.models.registry import register_model, torchvision_ref

HE2015 = "He et al., Deep Residual Learning for Image Recognition (CVPR 2016)"
HE2016 = "He et al., Identity Mappings in Deep Residual Networks (ECCV 2016)"
WRN2016 = "Zagoruyko & Komodakis, Wide Residual Networks (BMVC 2016)"
XIE2017 = "Xie et al., Aggregated Residual Transformations for Deep Neural Networks (CVPR 2017)"

SMALL_STEM = (
    "small_input=True: 3x3 stride-1 conv1 and no max-pool, so 28/32-pixel inputs keep 4x4 maps "
    "at layer4 (torchvision's 7x7 conv1 weights then no longer fit)"
)
SD_DOC = ("stochastic_depth (Huang et al. 2016): True = survival decaying linearly to p_L = 0.5, "
          "a float = that p_L, False/0 = off (default).")


class ResNetConfigError(CnnzooError, ValueError):
    """A configuration the papers do not define (wrong depth form, unknown shortcut, ...)."""


def conv3x3(cin: int, cout: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, 1, groups=groups, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride, bias=False)


class ZeroPadShortcut(nn.Module):
    """Option A (He et al. 2015, sec 3.3): identity that subsamples by `stride` and pads the
    extra channels with zeros; no parameters. Hand-written: torch has no such layer."""

    def __init__(self, stride: int, extra_channels: int):
        super().__init__()
        self.stride, self.extra = stride, extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra))

    def extra_repr(self) -> str:
        return f"stride={self.stride}, extra_channels={self.extra}"


def make_shortcut(kind: str, cin: int, cout: int, stride: int, norm: bool = True):
    """The block's shortcut: None (identity) when shapes match; else option "A" (zero-pad)
    or "B" (1x1 projection, + BN unless the block is pre-activated)."""
    if stride == 1 and cin == cout:
        return None
    if kind == "A":
        if cout < cin:
            raise ResNetConfigError(f"shortcut='A' cannot shrink {cin} to {cout} channels")
        return ZeroPadShortcut(stride, cout - cin)
    layers = [conv1x1(cin, cout, stride)] + ([nn.BatchNorm2d(cout)] if norm else [])
    return nn.Sequential(*layers)


DEFAULT_P_L = 0.5  # Huang et al. 2016: survival decays linearly to p_L = 0.5


def last_survival(stochastic_depth) -> float:
    """The `stochastic_depth` knob as p_L, the last block's survival probability (0.0 = off).

    False / 0 = off; True = the paper's p_L = 0.5; a number in (0, 1) = that p_L. p_L = 1
    (which drops nothing, so would silently mean "off") and anything else are errors.
    """
    if isinstance(stochastic_depth, bool):
        return DEFAULT_P_L if stochastic_depth else 0.0
    if isinstance(stochastic_depth, (int, float)) and 0.0 <= stochastic_depth < 1.0:
        return float(stochastic_depth)
    raise ResNetConfigError(
        f"stochastic_depth must be True (linear decay to p_L = {DEFAULT_P_L}), False/0 (off) "
        f"or the last block's survival probability p_L in (0, 1); got {stochastic_depth!r}")


def _drop_path(p: float) -> nn.Module:
    # Expected-value form (scale_by_keep=False): eval multiplies the branch by its survival.
    return DropPath(p) if p > 0 else nn.Identity()


class _Residual(nn.Module):
    """out = drop_path(branch) + shortcut(x), or just the branch in a plain net."""

    def _merge(self, branch: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        if not self.residual:
            return branch
        return self.drop_path(branch) + identity


# --- the blocks: every block takes (cin, planes, stride, downsample, residual, drop_prob),
# plus only the knobs its paper gives it -------------------------------------------------

class BasicBlock(_Residual):
    """Two 3x3 convs, post-activation (He et al. 2015, Fig. 2 left)."""

    expansion = 1
    preact = False

    def __init__(self, cin, planes, stride=1, downsample=None, *, residual=True, drop_prob=0.0):
        super().__init__()
        self.conv1 = conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.residual = residual
        self.drop_path = _drop_path(drop_prob)

    def forward(self, x):
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu2(self._merge(out, identity))

    def zero_init_last(self):
        nn.init.zeros_(self.bn2.weight)


class Bottleneck(_Residual):
    """1x1 reduce, 3x3 (grouped for ResNeXt), 1x1 expand x4 (He et al. 2015, Fig. 5 right).

    The stride sits on the 3x3 (torchvision's "v1.5"); `stride_in_1x1=True` puts it on the
    first 1x1 as in the paper, which skips 3/4 of the positions before the 3x3 sees them.
    Inner width = int(planes * width_per_group / 64) * groups (ResNeXt's C x d template).
    """

    expansion = 4
    preact = False

    def __init__(self, cin, planes, stride=1, downsample=None, *, residual=True, drop_prob=0.0,
                 groups=1, width_per_group=64, stride_in_1x1=False):
        super().__init__()
        width = int(planes * width_per_group / 64) * groups
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = conv1x1(cin, width, s1)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(width, width, s3, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu3 = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.residual = residual
        self.drop_path = _drop_path(drop_prob)

    def forward(self, x):
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu3(self._merge(out, identity))

    def zero_init_last(self):
        nn.init.zeros_(self.bn3.weight)


def _input_activation(cin: int, preact: bool) -> tuple[nn.Module, nn.Module]:
    """A pre-activation block's BN-ReLU on its input, which the projection shortcut shares
    (the two paths split after it). The first block's input is the stem's BN-ReLU output
    already (He et al. 2016, appendix), so `preact=False` makes both identities: no
    parameters, so no `bn1` keys. The ReLU is not in place: the raw input is the identity."""
    if not preact:
        return nn.Identity(), nn.Identity()
    return nn.BatchNorm2d(cin), nn.ReLU(inplace=False)


class PreActBasicBlock(_Residual):
    """BN-ReLU-conv3x3, BN-ReLU-(dropout)-conv3x3 (He et al. 2016, Fig. 4e; WRN's block).

    A projection shortcut takes the pre-activated input; `preact=False` for the first block,
    whose input the stem already activated. `dropout` sits between the convs as in Wide
    ResNets.
    """

    expansion = 1
    preact = True

    def __init__(self, cin, planes, stride=1, downsample=None, *, residual=True, drop_prob=0.0,
                 preact=True, dropout=0.0):
        super().__init__()
        self.bn1, self.relu1 = _input_activation(cin, preact)
        self.conv1 = conv3x3(cin, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU(inplace=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = conv3x3(planes, planes)
        self.downsample = downsample
        self.residual = residual
        self.drop_path = _drop_path(drop_prob)

    def forward(self, x):
        act = self.relu1(self.bn1(x))
        out = self.conv1(act)
        out = self.conv2(self.dropout(self.relu2(self.bn2(out))))
        identity = x if self.downsample is None else self.downsample(act)
        return self._merge(out, identity)

    def zero_init_last(self):
        nn.init.zeros_(self.conv2.weight)


class PreActBottleneck(_Residual):
    """BN-ReLU-conv1x1, BN-ReLU-conv3x3 (stride), BN-ReLU-conv1x1 x4 (He et al. 2016)."""

    expansion = 4
    preact = True

    def __init__(self, cin, planes, stride=1, downsample=None, *, residual=True, drop_prob=0.0,
                 preact=True):
        super().__init__()
        self.bn1, self.relu1 = _input_activation(cin, preact)
        self.conv1 = conv1x1(cin, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU(inplace=False)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes)
        self.relu3 = nn.ReLU(inplace=False)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.downsample = downsample
        self.residual = residual
        self.drop_path = _drop_path(drop_prob)

    def forward(self, x):
        act = self.relu1(self.bn1(x))
        out = self.conv1(act)
        out = self.conv2(self.relu2(self.bn2(out)))
        out = self.conv3(self.relu3(self.bn3(out)))
        identity = x if self.downsample is None else self.downsample(act)
        return self._merge(out, identity)

    def zero_init_last(self):
        nn.init.zeros_(self.conv3.weight)


class ResNet(Backbone):
    """Stem, stages of blocks (stride 2 at each stage after the first), GAP, FC.

    stem="imagenet": 7x7/2 conv + 3x3/2 max-pool; stem="small": 3x3/1 conv, no pool (CIFAR).
    Pre-activation blocks (He et al. 2016, appendix) take the stem's BN-ReLU as the first
    block's pre-activation, project shortcuts without BN, and get a final BN-ReLU
    (`final_bn`, `final_relu`) before pooling; identities in post-activation nets.
    `block_knobs` go to every block: the bottleneck's groups / width_per_group /
    stride_in_1x1, the wide block's dropout.
    stochastic_depth=p_L: block l = 1..L survives with p_l = 1 - l/L (1 - p_L) (Huang et al.
    2016, eq. 4; p_0 = 1 is the input, so the first block keeps 1 - (1 - p_L)/L); a dropped
    block passes its shortcut alone; eval scales each branch by p_l. True = the paper's
    p_L = 0.5; False / 0 = off (see `last_survival`).

    Backbone vocabulary: forward_features is the last stage's map (after the final BN-ReLU
    in pre-activation nets); pre_logits is its global average, what `fc` takes. Stages: the
    stem's `relu`, then `layer1`.. (the last one `final_relu` in pre-activation nets).
    """

    classifier_name = "fc"

    def __init__(self, block, layers, num_classes=1000, in_chans=3, *,
                 widths=(64, 128, 256, 512), stem="imagenet", stem_width=64, shortcut="B",
                 residual=True, stochastic_depth=0.0, zero_init_residual=False, **block_knobs):
        super().__init__()
        if shortcut not in ("A", "B"):
            raise ResNetConfigError(f"shortcut must be 'A' or 'B', got {shortcut!r}")
        stochastic_depth = last_survival(stochastic_depth)
        if not residual and (stochastic_depth > 0 or zero_init_residual):
            raise ResNetConfigError(
                "a plain net (residual=False) has no branch to drop or zero-initialise")
        if stem not in ("imagenet", "small"):
            raise ResNetConfigError(f"stem must be 'imagenet' or 'small', got {stem!r}")
        self.in_chans = in_chans
        self.min_input_size = 1  # every conv and pool pads: even 1x1 inputs get through

        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_chans, stem_width, 7, 2, 3, bias=False)
        else:
            self.conv1 = conv3x3(in_chans, stem_width)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1) if stem == "imagenet" else nn.Identity()

        preact = block.preact
        total, index, cin = sum(layers), 0, stem_width
        for i, (n, planes) in enumerate(zip(layers, widths)):
            blocks = []
            for j in range(n):
                index += 1
                stride = 2 if i > 0 and j == 0 else 1
                cout = planes * block.expansion
                down = (make_shortcut(shortcut, cin, cout, stride, norm=not preact)
                        if residual else None)
                drop = index / total * (1.0 - stochastic_depth) if stochastic_depth else 0.0
                preact_kw = {"preact": index > 1} if preact else {}
                blocks.append(block(cin, planes, stride, down, residual=residual,
                                    drop_prob=drop, **block_knobs, **preact_kw))
                cin = cout
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.num_stages = len(layers)
        self.final_bn = nn.BatchNorm2d(cin) if preact else nn.Identity()
        self.final_relu = nn.ReLU(inplace=True) if preact else nn.Identity()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        self.num_features = cin
        stages = [f"layer{i + 1}" for i in range(self.num_stages)]
        if preact:  # the last map is the final BN-ReLU's
            stages[-1] = "final_relu"
        self.stage_names = ("relu", *stages)

        init_weights(self)
        if zero_init_residual:  # each block starts as the identity (Goyal et al. 2017)
            for m in self.modules():
                if isinstance(m, _Residual):
                    m.zero_init_last()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.final_relu(self.final_bn(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        return x if pre_logits else self.fc(x)


def survival_probs(model: nn.Module) -> list[float]:
    """Each residual block's survival probability in order (1.0 where nothing is dropped)."""
    return [1.0 - getattr(m.drop_path, "p", 0.0)
            for m in model.modules() if isinstance(m, _Residual)]


# --- the papers' tables --------------------------------------------------------------------

DEPTHS = {  # ImageNet stage depths (He et al. 2015, Table 1): conv2_x .. conv5_x
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}
PREACT = {BasicBlock: PreActBasicBlock, Bottleneck: PreActBottleneck}  # He et al. 2016
CIFAR_WIDTHS = (16, 32, 64)  # He et al. 2015 sec 4.2: a 16-filter 3x3 stem, then 16/32/64


def imagenet_resnet(depth, num_classes=1000, in_chans=3, *, small_input=False, preact=False,
                    **knobs) -> ResNet:
    """He et al. 2015 Table 1: 7x7/2 conv 64, 3x3/2 max-pool, conv2_x .. conv5_x at
    64/128/256/512 planes (DEPTHS), GAP, FC; `preact=True` with He et al. 2016's blocks.
    `knobs` go to ResNet (residual, stochastic_depth, ...) and the blocks (groups, ...)."""
    block, layers = DEPTHS[depth]
    return ResNet(PREACT[block] if preact else block, layers, num_classes, in_chans,
                  stem="small" if small_input else "imagenet", **knobs)


def cifar_resnet(depth, num_classes=10, in_chans=3, *, shortcut="A", residual=True,
                 stochastic_depth=0.0, zero_init_residual=False) -> ResNet:
    """He et al. 2015 sec 4.2: 3x3 conv 16, three stages of n basic blocks at 16/32/64
    filters (depth = 6n + 2), GAP, FC. Option A shortcuts (parameter-free) as in the paper."""
    if depth < 8 or (depth - 2) % 6:
        raise ResNetConfigError(f"CIFAR ResNet depth must be 6n+2 (20, 32, ...), got {depth}")
    n = (depth - 2) // 6
    return ResNet(BasicBlock, (n, n, n), num_classes, in_chans, widths=CIFAR_WIDTHS,
                  stem="small", stem_width=16, shortcut=shortcut, residual=residual,
                  stochastic_depth=stochastic_depth, zero_init_residual=zero_init_residual)


def preact_cifar_resnet(depth, num_classes=10, in_chans=3, *, bottleneck=None, shortcut="B",
                        stochastic_depth=0.0, zero_init_residual=False) -> ResNet:
    """He et al. 2016: pre-activation CIFAR nets, basic (6n+2) or bottleneck (9n+2, stage
    outputs 64/128/256). By default depth >= 164 means bottleneck, as in the paper."""
    bottleneck = depth >= 164 if bottleneck is None else bottleneck
    per_block = 9 if bottleneck else 6
    if depth < per_block + 2 or (depth - 2) % per_block:
        raise ResNetConfigError(
            f"pre-activation CIFAR depth must be {per_block}n+2 "
            f"({'bottleneck' if bottleneck else 'basic'} blocks), got {depth}")
    n = (depth - 2) // per_block
    block = PreActBottleneck if bottleneck else PreActBasicBlock
    return ResNet(block, (n, n, n), num_classes, in_chans, widths=CIFAR_WIDTHS, stem="small",
                  stem_width=16, shortcut=shortcut, stochastic_depth=stochastic_depth,
                  zero_init_residual=zero_init_residual)


def wrn(depth, widen_factor, dropout=0.0, num_classes=10, in_chans=3, *,
        stochastic_depth=0.0, zero_init_residual=False) -> ResNet:
    """WRN-depth-k (Zagoruyko & Komodakis 2016): pre-activation basic blocks at 16k/32k/64k
    filters, n = (depth - 4) / 6 per stage, dropout between the two convs of each block."""
    if depth < 10 or (depth - 4) % 6:
        raise ResNetConfigError(f"Wide ResNet depth must be 6n+4 (16, 22, 28, 40), got {depth}")
    if widen_factor < 1:
        raise ResNetConfigError(f"widen_factor must be >= 1, got {widen_factor}")
    n = (depth - 4) // 6
    return ResNet(PreActBasicBlock, (n, n, n), num_classes, in_chans,
                  widths=tuple(w * widen_factor for w in CIFAR_WIDTHS), stem="small",
                  stem_width=16, stochastic_depth=stochastic_depth,
                  zero_init_residual=zero_init_residual, dropout=dropout)


# --- registered builders: one line per network ---------------------------------------------

def _register(name: str, build, doc: str, *, paper: str, year: int, **meta):
    build.__name__ = build.__qualname__ = name
    build.__doc__ = doc
    return register_model(family="resnet", paper=paper, year=year, name=name, **meta)(build)


def _imagenet_meta(meta: dict) -> dict:
    return dict(input_size=(3, 224, 224), recipe="resnet", small_input=SMALL_STEM, **meta)


def _imagenet_doc(name: str, paper: str, notes: str, bottleneck_knobs: str = "") -> str:
    knobs = (f"Knobs: small_input ({SMALL_STEM}); residual=False drops every shortcut (the "
             f"plain net);{bottleneck_knobs} zero_init_residual zeroes each branch's last BN; "
             f"{SD_DOC}")
    return " ".join(filter(None, (f"{name}: {paper}.", notes, knobs)))


def _basic(name, depth, *, residual=True, paper=HE2015, year=2015, **meta):
    """Register an ImageNet net of basic blocks (ResNet-18/34, plain-18/34)."""
    def build(num_classes=1000, in_chans=3, *, small_input=False, residual=residual,
              zero_init_residual=False, stochastic_depth=0.0):
        return imagenet_resnet(depth, num_classes, in_chans, small_input=small_input,
                               residual=residual, zero_init_residual=zero_init_residual,
                               stochastic_depth=stochastic_depth)

    doc = _imagenet_doc(name, paper, meta.get("notes", ""))
    return _register(name, build, doc, paper=paper, year=year, **_imagenet_meta(meta))


def _bottleneck(name, depth, *, groups=1, width_per_group=64, residual=True, paper=HE2015,
                year=2015, **meta):
    """Register an ImageNet net of bottleneck blocks (ResNet-50+, ResNeXt, wide, plain)."""
    def build(num_classes=1000, in_chans=3, *, small_input=False, residual=residual,
              groups=groups, width_per_group=width_per_group, stride_in_1x1=False,
              zero_init_residual=False, stochastic_depth=0.0):
        return imagenet_resnet(depth, num_classes, in_chans, small_input=small_input,
                               residual=residual, groups=groups,
                               width_per_group=width_per_group, stride_in_1x1=stride_in_1x1,
                               zero_init_residual=zero_init_residual,
                               stochastic_depth=stochastic_depth)

    doc = _imagenet_doc(name, paper, meta.get("notes", ""), (
        " groups x width_per_group is the 3x3's cardinality x width (ResNeXt's C x d);"
        " stride_in_1x1=True puts the stride on the first 1x1 as in the paper (default: on"
        " the 3x3, torchvision v1.5);"))
    return _register(name, build, doc, paper=paper, year=year, **_imagenet_meta(meta))


def _preact_imagenet(name, depth, **meta):
    def build(num_classes=1000, in_chans=3, *, small_input=False, zero_init_residual=False,
              stochastic_depth=0.0):
        return imagenet_resnet(depth, num_classes, in_chans, small_input=small_input,
                               preact=True, zero_init_residual=zero_init_residual,
                               stochastic_depth=stochastic_depth)

    doc = (f"{name}: pre-activation ResNet-{depth} ({HE2016}); BN-ReLU-conv units, final "
           f"BN-ReLU before pooling. small_input: {SMALL_STEM}. {SD_DOC}")
    return _register(name, build, doc, paper=HE2016, year=2016, **_imagenet_meta(meta))


_CIFAR_META = dict(input_size=(3, 32, 32), recipe="resnet_cifar")


def _cifar(name, depth, *, residual=True, **meta):
    def build(num_classes=10, in_chans=3, *, shortcut="A", residual=residual,
              stochastic_depth=0.0, zero_init_residual=False):
        return cifar_resnet(depth, num_classes, in_chans, shortcut=shortcut, residual=residual,
                            stochastic_depth=stochastic_depth,
                            zero_init_residual=zero_init_residual)

    kind = "ResNet" if residual else "plain net"
    doc = (f"{name}: CIFAR {kind} of depth {depth} = 6n+2 ({HE2015}, sec 4.2). "
           "shortcut='A' zero-pads (parameter-free, the paper's), 'B' projects with a 1x1 "
           "conv + BN where shapes change. Natively small: 28/32-pixel inputs as they are. "
           f"{SD_DOC}")
    return _register(name, build, doc, paper=HE2015, year=2015, **_CIFAR_META, **meta)


def _preact_cifar(name, depth, bottleneck, **meta):
    def build(num_classes=10, in_chans=3, *, shortcut="B", stochastic_depth=0.0,
              zero_init_residual=False):
        return preact_cifar_resnet(depth, num_classes, in_chans, bottleneck=bottleneck,
                                   shortcut=shortcut, stochastic_depth=stochastic_depth,
                                   zero_init_residual=zero_init_residual)

    doc = (f"{name}: pre-activation CIFAR ResNet-{depth} ({HE2016}), "
           f"{'bottleneck, 9n+2' if bottleneck else 'basic, 6n+2'}. {SD_DOC}")
    return _register(name, build, doc, paper=HE2016, year=2016, **_CIFAR_META, **meta)


def _wrn(name, depth, k, **meta):
    def build(num_classes=10, in_chans=3, *, dropout=0.0, stochastic_depth=0.0,
              zero_init_residual=False):
        return wrn(depth, k, dropout, num_classes, in_chans,
                   stochastic_depth=stochastic_depth, zero_init_residual=zero_init_residual)

    doc = f"{name}: WRN-{depth}-{k} for CIFAR ({WRN2016}); dropout between the convs. {SD_DOC}"
    return _register(name, build, doc, paper=WRN2016, year=2016, **_CIFAR_META, **meta)
_tv = torchvision_ref  # ref_top1_acc / ref_source of torchvision's IMAGENET1K_V1 weights


def _xie(top1_err: float) -> dict:
    """Xie et al. 2017 Table 3 (the ablation): single-crop 224 top-1 error, as accuracy."""
    return dict(top1_err=top1_err, ref_top1_acc=round(100 - top1_err, 1),
                ref_source="Xie et al. 2017 Table 3: single model, single crop 224 (the "
                "authors' training; no published weights)")


# ImageNet ResNets and their plain counterparts (He et al. 2015; top-1 from Table 2,
# ResNet-50/101 top-1 from Xie et al. 2017 Table 3 as the lectures quote it).
resnet18 = _basic("resnet18", 18, top1_err=27.88, **_tv(69.758, "ResNet18"))
resnet34 = _basic("resnet34", 34, top1_err=25.03, **_tv(73.314, "ResNet34"))
resnet50 = _bottleneck("resnet50", 50, top1_err=23.9, **_tv(76.13, "ResNet50"),
                       notes="top-1 23.9 as retrained in Xie et al. 2017 (Table 3).")
resnet101 = _bottleneck("resnet101", 101, top1_err=22.0, **_tv(77.374, "ResNet101"),
                        notes="top-1 22.0 as retrained in Xie et al. 2017 (Table 3).")
resnet152 = _bottleneck("resnet152", 152, top5_err=3.57, **_tv(78.312, "ResNet152"),
                        notes="3.57% top-5 is the ILSVRC 2015 winning ensemble's test error.")
plain18 = _basic("plain18", 18, residual=False, top1_err=27.94,
                 notes="ResNet-18 without shortcuts: the degradation experiment's baseline.")
plain34 = _basic("plain34", 34, residual=False, top1_err=28.54,
                 notes="Deeper plain net, higher error than plain18: degradation.")
plain50 = _bottleneck("plain50", 50, residual=False, notes="ResNet-50 without shortcuts.")
plain101 = _bottleneck("plain101", 101, residual=False, notes="ResNet-101 without shortcuts.")
plain152 = _bottleneck("plain152", 152, residual=False, notes="ResNet-152 without shortcuts.")

# ResNeXt (Xie et al. 2017): name = depth_{cardinality}x{width per group}d. Table 3's
# ablation keeps ~4.1 / ~7.8 GFLOPs while trading width for cardinality.
_X = dict(paper=XIE2017, year=2017)
resnext50_1x64d = _bottleneck("resnext50_1x64d", 50, notes="= ResNet-50.", **_xie(23.9), **_X)
resnext50_2x40d = _bottleneck("resnext50_2x40d", 50, groups=2, width_per_group=40,
                              **_xie(23.0), **_X)
resnext50_4x24d = _bottleneck("resnext50_4x24d", 50, groups=4, width_per_group=24,
                              **_xie(22.6), **_X)
resnext50_8x14d = _bottleneck("resnext50_8x14d", 50, groups=8, width_per_group=14,
                              **_xie(22.3), **_X)
resnext50_32x4d = _bottleneck("resnext50_32x4d", 50, groups=32, width_per_group=4,
                              top1_err=22.2, **_tv(77.618, "ResNeXt50_32X4D"), **_X)
resnext101_1x64d = _bottleneck("resnext101_1x64d", 101, notes="= ResNet-101.", **_xie(22.0),
                               **_X)
resnext101_2x40d = _bottleneck("resnext101_2x40d", 101, groups=2, width_per_group=40,
                               **_xie(21.7), **_X)
resnext101_4x24d = _bottleneck("resnext101_4x24d", 101, groups=4, width_per_group=24,
                               **_xie(21.4), **_X)
resnext101_8x14d = _bottleneck("resnext101_8x14d", 101, groups=8, width_per_group=14,
                               **_xie(21.3), **_X)
resnext101_32x4d = _bottleneck("resnext101_32x4d", 101, groups=32, width_per_group=4,
                               **_xie(21.2), **_X)
resnext101_32x8d = _bottleneck("resnext101_32x8d", 101, groups=32, width_per_group=8,
                               **_tv(79.312, "ResNeXt101_32X8D"), **_X)
# torchvision's only weights for it were trained with its new recipe (hence the high number).
resnext101_64x4d = _bottleneck("resnext101_64x4d", 101, groups=64, width_per_group=4,
                               **_tv(83.246, "ResNeXt101_64X4D",
                                     extra=", resize 232; torchvision's new training recipe"),
                               **_X)

# torchvision's wide ImageNet bottlenecks: inner 3x3 width doubled (width_per_group=128).
wide_resnet50_2 = _bottleneck("wide_resnet50_2", 50, width_per_group=128, paper=WRN2016,
                              year=2016, notes="ResNet-50 with a 2x wider bottleneck 3x3.",
                              **_tv(78.468, "Wide_ResNet50_2"))
wide_resnet101_2 = _bottleneck("wide_resnet101_2", 101, width_per_group=128, paper=WRN2016,
                               year=2016, notes="ResNet-101 with a 2x wider bottleneck 3x3.",
                               **_tv(78.848, "Wide_ResNet101_2"))

# Pre-activation ImageNet ResNets (He et al. 2016).
preact_resnet18 = _preact_imagenet("preact_resnet18", 18)
preact_resnet34 = _preact_imagenet("preact_resnet34", 34)
preact_resnet50 = _preact_imagenet("preact_resnet50", 50)
preact_resnet101 = _preact_imagenet("preact_resnet101", 101)
preact_resnet152 = _preact_imagenet("preact_resnet152", 152)

# CIFAR ResNets, 6n+2 (He et al. 2015 sec 4.2, Table 6) and their plain counterparts.
resnet20 = _cifar("resnet20", 20, notes="0.27M params; CIFAR-10 error 8.75%.")
resnet32 = _cifar("resnet32", 32, notes="0.46M params; CIFAR-10 error 7.51%.")
resnet44 = _cifar("resnet44", 44, notes="0.66M params; CIFAR-10 error 7.17%.")
resnet56 = _cifar("resnet56", 56, notes="0.85M params; CIFAR-10 error 6.97%.")
resnet110 = _cifar("resnet110", 110, notes="1.7M params; CIFAR-10 error 6.43%.")
resnet1202 = _cifar("resnet1202", 1202, notes="19.4M params; CIFAR-10 error 7.93% (overfits).")
plain_cifar20 = _cifar("plain_cifar20", 20, residual=False, notes="plain counterpart.")
plain_cifar32 = _cifar("plain_cifar32", 32, residual=False, notes="plain counterpart.")
plain_cifar44 = _cifar("plain_cifar44", 44, residual=False, notes="plain counterpart.")
plain_cifar56 = _cifar("plain_cifar56", 56, residual=False,
                       notes="plain counterpart; higher train error than plain_cifar20.")
plain_cifar110 = _cifar("plain_cifar110", 110, residual=False, notes="plain counterpart.")
plain_cifar1202 = _cifar("plain_cifar1202", 1202, residual=False, notes="plain counterpart.")

# Pre-activation CIFAR ResNets (He et al. 2016, Tables 3 and 4).
preact_resnet110 = _preact_cifar("preact_resnet110", 110, False,
                                 notes="1.7M params (basic blocks).")
preact_resnet164 = _preact_cifar("preact_resnet164", 164, True,
                                 notes="1.7M params (bottleneck).")
preact_resnet1001 = _preact_cifar("preact_resnet1001", 1001, True,
                                  notes="10.2M params; 4.62% CIFAR-10 error (abstract).")

# Wide ResNets for CIFAR: the generic WRN-d-k, registered here (not beside the `wrn` builder
# above) so that `cnnzoo models` lists it with its fixed settings, after the other ResNets.
@register_model(family="resnet", paper=WRN2016, year=2016, input_size=(3, 32, 32),
                recipe="resnet_cifar", name="wrn",
                notes="Any WRN-d-k: depth = 6n+4, widen_factor k (defaults: WRN-28-10, 36.5M "
                "params); wrn16_8 / wrn28_10 / wrn40_4 are fixed settings of it.")
def wrn_any(num_classes=10, in_chans=3, *, depth=28, widen_factor=10, dropout=0.0,
            stochastic_depth=0.0, zero_init_residual=False) -> ResNet:
    """wrn: WRN-depth-widen_factor for CIFAR (Zagoruyko & Komodakis 2016), e.g.
    create_model("wrn", depth=16, widen_factor=4). depth must be 6n+4, widen_factor >= 1;
    dropout sits between the two convs of each block. stochastic_depth: True = survival
    decaying linearly to p_L = 0.5, a float = that p_L, False/0 = off (default)."""
    return wrn(depth, widen_factor, dropout, num_classes, in_chans,
               stochastic_depth=stochastic_depth, zero_init_residual=zero_init_residual)


# Its fixed settings (Zagoruyko & Komodakis 2016, parameter counts of their Table 4).
wrn16_8 = _wrn("wrn16_8", 16, 8, notes="11.0M params.")
wrn28_10 = _wrn("wrn28_10", 28, 10, notes="36.5M params.")
wrn40_4 = _wrn("wrn40_4", 40, 4, notes="8.9M params.")

