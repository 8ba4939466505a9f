"""GoogLeNet (Inception v1): Szegedy et al., "Going Deeper with Convolutions", CVPR 2015
(arXiv:1409.4842). ILSVRC 2014 winner, 6.67% top-5 error.

The Inception module runs 1x1, 3x3, 5x5 convolutions and a 3x3 max-pool side by side and
concatenates them along depth (Fig. 2a); 1x1 "bottleneck" reductions before the 3x3/5x5
convs and after the pool make it affordable (Fig. 2b). On a 28x28x256 input with 128/192/96
filters the naive module costs 854M multiplies, the reduced one (64/64 reductions, pool
projection 64) 358M (lecture 001).

State-dict keys and shapes follow torchvision's `googlenet` (BatchNorm after every conv, as in
its TF port), so its ImageNet weights load with strict=True. Those weights were ported from
TensorFlow and expect inputs scaled to [-1, 1]: build with `transform_input=True` (see
`layers.transform_input`) to feed them ImageNet-normalised images, as torchvision does.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from cnnzoo.models.layers import (
    TV_WEIGHTS_NOTE,
    BasicConv2d,
    Concat,
    InceptionTrunk,
    check_transform_input,
    init_weights,
)
from cnnzoo.models.registry import register_model, torchvision_ref


class Inception(Concat):
    """One Inception module (paper Fig. 2); output depth ch1x1 + ch3x3 + ch5x5 + pool branch.

    naive=True is Fig. 2(a): 1x1, 3x3 and 5x5 convs and a 3x3 max-pool straight on the input;
    the pool branch passes all `in_ch` channels through (ch3x3red, ch5x5red, pool_proj unused).
    naive=False is Fig. 2(b): 1x1 reductions to ch3x3red / ch5x5red before the 3x3 / 5x5
    convs, and a 1x1 projection to pool_proj after the pool.
    `kernel5` is the "5x5" branch's kernel: the paper's 5 by default; torchvision's googlenet
    uses 3 there (a known bug, pytorch/vision#906, kept so its weights load).
    The four branches (torchvision's branch1..branch4) are concatenated along depth.
    """

    def __init__(
        self,
        in_ch: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
        naive: bool = False,
        *,
        kernel5: int = 5,
    ):
        # torchvision pads its stride-1 pool with ceil_mode=True; same output size either way.
        pool = nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True)
        if naive:
            branches = (nn.Sequential(BasicConv2d(in_ch, ch3x3, 3)),
                        nn.Sequential(BasicConv2d(in_ch, ch5x5, kernel5)),
                        nn.Sequential(pool))
            out_channels = ch1x1 + ch3x3 + ch5x5 + in_ch
        else:
            branches = (
                nn.Sequential(BasicConv2d(in_ch, ch3x3red, 1), BasicConv2d(ch3x3red, ch3x3, 3)),
                nn.Sequential(BasicConv2d(in_ch, ch5x5red, 1),
                              BasicConv2d(ch5x5red, ch5x5, kernel5)),
                nn.Sequential(pool, BasicConv2d(in_ch, pool_proj, 1)),
            )
            out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj
        super().__init__(branch1=BasicConv2d(in_ch, ch1x1, 1), branch2=branches[0],
                         branch3=branches[1], branch4=branches[2])
        self.naive = naive
        self.out_channels = out_channels


class InceptionAux(nn.Module):
    """Auxiliary classifier (paper Sec. 5): AvgPool 5x5/3 -> 1x1 conv 128 -> FC 1024 -> ReLU ->
    dropout 0.7 -> FC num_classes. It injects gradient into the middle of the network.

    The pooled map is then brought to 4x4 adaptively (a no-op at 224x224, where 14x14 pools
    to 4x4) so other input sizes fit fc1; with `small_input` only the adaptive 4x4 pool runs.
    """

    def __init__(self, in_ch: int, num_classes: int, small_input: bool = False):
        super().__init__()
        self.pool = nn.Identity() if small_input else nn.AvgPool2d(5, stride=3)
        self.conv = BasicConv2d(in_ch, 128, 1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(0.7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.adaptive_avg_pool2d(self.pool(x), 4)
        x = torch.flatten(self.conv(x), 1)
        x = self.dropout(torch.relu(self.fc1(x)))
        return self.fc2(x)


# (in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj): paper Table 1.
STAGES = {
    "3a": (192, 64, 96, 128, 16, 32, 32),
    "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64),
    "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64),
    "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128),
    "5a": (832, 256, 160, 320, 32, 128, 128),
    "5b": (832, 384, 192, 384, 48, 128, 128),
}


class GoogLeNet(InceptionTrunk):
    """22 weight layers: stem, 9 Inception modules, global average pool, one FC (paper Table 1).

    Train mode with aux heads returns AuxOutput(logits, aux=(aux1 at 4a, aux2 at 4d));
    eval mode returns the logits tensor and skips the aux heads. The paper's training loss
    weights each auxiliary loss by 0.3. forward_features is inception5b's 7x7x1024 map (at
    224), pre_logits its average after the dropout: what `fc` takes.
    """

    aux_classifier_names = ("aux1.fc2", "aux2.fc2")
    stage_names = ("conv1", "conv3", "inception3b", "inception4e", "inception5b")
    # Smallest input side by small_input: the stem alone, and with the aux heads running
    # (train mode), whose 5x5/3 pool needs 5x5 at 4a.
    MIN_SIZE = {False: 15, True: 4}
    MIN_AUX_SIZE = {False: 79, True: 4}

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        aux_logits: bool = True,
        paper_5x5: bool = False,
        small_input: bool = False,
        dropout: float = 0.4,
        transform_input: bool = False,
    ):
        super().__init__()
        check_transform_input("googlenet", transform_input, in_chans)
        self.in_chans, self.aux_logits, self.small_input = in_chans, aux_logits, small_input
        self.transform_input = transform_input
        self.min_input_size = self.MIN_SIZE[small_input]
        self.min_aux_input_size = self.MIN_AUX_SIZE[small_input]
        if small_input:  # 32x32 -> 16x16 at 3a (ImageNet 224 -> 28): 3x3/1 conv1, no pool1
            self.conv1 = BasicConv2d(in_chans, 64, 3, stride=1, padding=1)
            self.maxpool1 = nn.Identity()
        else:
            self.conv1 = BasicConv2d(in_chans, 64, 7, stride=2, padding=3)
            self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, 1)
        self.conv3 = BasicConv2d(64, 192, 3)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        k5 = 5 if paper_5x5 else 3
        for name, cfg in STAGES.items():
            setattr(self, f"inception{name}", Inception(*cfg, kernel5=k5))
            if name == "3b":
                self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            if name == "4e":
                self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.trunk = tuple(n for n, _ in self.named_children())  # data-flow order

        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes, small_input)
            self.aux2 = InceptionAux(528, num_classes, small_input)
            self.aux_taps = {"inception4a": "aux1", "inception4d": "aux2"}
        else:
            self.aux1 = self.aux2 = None
            self.aux_classifier_names = ()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)
        init_weights(self)


@register_model(
    family="inception",
    paper="Szegedy et al., Going Deeper with Convolutions (CVPR 2015)",
    year=2015,
    input_size=(3, 224, 224),
    top5_err=6.67,
    **torchvision_ref(69.778, "GoogLeNet"),
    recipe="googlenet",
    small_input="conv1 becomes 3x3 stride 1 and the first max-pool is dropped: "
    "32x32 -> 16x16 at inception3a (224 -> 28 with the ImageNet stem); aux heads pool "
    "adaptively to 4x4",
    notes="torchvision key layout (BN after each conv); the '5x5' branch is 3x3 as in "
    "torchvision unless paper_5x5=True; aux heads (loss weight 0.3) only in train mode; "
    + TV_WEIGHTS_NOTE + " (its aux heads are not trained)",
)
def googlenet(
    num_classes: int = 1000,
    in_chans: int = 3,
    *,
    aux_logits: bool = True,
    paper_5x5: bool = False,
    small_input: bool = False,
    dropout: float = 0.4,
    transform_input: bool = False,
) -> GoogLeNet:
    """GoogLeNet / Inception v1 (Szegedy et al. 2015), torchvision's state-dict layout.

    aux_logits: build the two auxiliary classifiers (6,624,904 params without, 13,004,888
        with, at 1000 classes).
    paper_5x5: use the paper's 5x5 kernel in each module's 5x5 branch; the default 3x3 is
        torchvision's known bug, kept so its ImageNet weights load with strict=True.
    small_input: for 28/32-pixel images, conv1 is 3x3 stride 1 (was 7x7 stride 2) and the
        first max-pool is dropped, so 32x32 reaches inception3a at 16x16.
    dropout: before the final FC (paper: 40%; torchvision uses 20%).
    transform_input: rescale ImageNet-normalised RGB inputs to [-1, 1] per channel first
        (`layers.transform_input`), which torchvision's TF-ported weights need.
    """
    return GoogLeNet(num_classes, in_chans, aux_logits, paper_5x5, small_input, dropout,
                     transform_input)
