"""SqueezeNet: Iandola, Han, Moskewicz, Ashraf, Dally, Keutzer. SqueezeNet: AlexNet-level
accuracy with 50x fewer parameters and <0.5MB model size. arXiv 1602.07360, 2016.

The Fire module squeezes with 1x1 filters, then expands with 1x1 and 3x3 filters side by
side and concatenates them; no FC layers: a final 1x1 conv makes one map per class, which is
averaged. Dropout 0.5 sits before that conv.

- `squeezenet1_0`: the paper's Table 1 (96 7x7/2 stem filters, Fire2..Fire9, max-pools after
  conv1, fire4, fire8). 1,248,424 parameters.
- `squeezenet1_1`: the authors' v1.1 (64 3x3/2 stem filters, pools moved earlier: 2.4x less
  computation, slightly fewer parameters). 1,235,496 parameters.

torchvision's module names (features.N, each Fire with squeeze / expand1x1 / expand3x3 and
their *_activation; classifier.1 the final conv), so its ImageNet weights load with
`strict=True`.

Backbone vocabulary: forward_features is `features` (512 maps); stages are the stem's ReLU,
the last layer before each later max-pool, and the last Fire.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnzoo.models.backbone import Backbone
from cnnzoo.models.layers import init_weights
from cnnzoo.models.registry import register_model, torchvision_ref

PAPER = ("Iandola et al., SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and "
         "<0.5MB model size (arXiv 2016)")
SMALL_STEM = (
    "small_input=True: features.0 becomes a 3x3 stride-1 pad-1 conv (same width), so a 32x32 "
    "image keeps 4x4 maps (28x28: 3x3) before the classifier instead of 1x1; the three "
    "max-pools stay. v1.0's 7x7 conv1 weights then no longer fit (v1.1's shapes are unchanged)"
)


class Fire(nn.Module):
    """squeeze 1x1 (s maps) -> ReLU -> [expand 1x1 (e1), expand 3x3 (e3)] -> ReLU -> concat."""

    def __init__(self, cin: int, squeeze: int, expand1x1: int, expand3x3: int):
        super().__init__()
        self.squeeze = nn.Conv2d(cin, squeeze, 1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, 1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, 3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat([self.expand1x1_activation(self.expand1x1(x)),
                          self.expand3x3_activation(self.expand3x3(x))], 1)


def _pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(3, 2, ceil_mode=True)


# Layer plans: "P" = 3x3/2 max-pool (ceil mode), (s, e1, e3) = a Fire module whose input is
# the previous output width. Stem: (width, kernel, stride).
VERSIONS = {
    "1_0": ((96, 7, 2), ["P", (16, 64, 64), (16, 64, 64), (32, 128, 128), "P",
                         (32, 128, 128), (48, 192, 192), (48, 192, 192), (64, 256, 256), "P",
                         (64, 256, 256)]),
    "1_1": ((64, 3, 2), ["P", (16, 64, 64), (16, 64, 64), "P", (32, 128, 128), (32, 128, 128),
                         "P", (48, 192, 192), (48, 192, 192), (64, 256, 256), (64, 256, 256)]),
}
# Smallest input each stem survives (torchvision's documented 21 / 17 for the full stems;
# the stride-1 stem: 8 -> 4 -> 2 -> 1 through the three 3x3/2 ceil-mode pools).
MIN_SIZE = {("1_0", False): 21, ("1_1", False): 17, ("1_0", True): 8, ("1_1", True): 8}


class SqueezeNet(Backbone):
    """features (stem conv, ReLU, Fires and pools) -> classifier (dropout, 1x1 conv to classes,
    ReLU, global avg pool) -> flatten.

    pre_logits is the dropout-then-averaged feature vector (512): `classifier.1` applied to it
    (as a 1x1 map) gives the class conv's mean response before its ReLU, a linear read-out;
    the logits average after that ReLU.
    """

    classifier_name = "classifier.1"

    def __init__(self, version: str = "1_0", num_classes: int = 1000, in_chans: int = 3,
                 dropout: float = 0.5, small_input: bool = False):
        super().__init__()
        (width, kernel, stride), plan = VERSIONS[version]
        stem = (nn.Conv2d(in_chans, width, 3, 1, 1) if small_input
                else nn.Conv2d(in_chans, width, kernel, stride))
        layers: list[nn.Module] = [stem, nn.ReLU(inplace=True)]
        c = width
        for step in plan:
            if step == "P":
                layers.append(_pool())
            else:
                layers.append(Fire(c, *step))
                c = step[1] + step[2]
        self.features = nn.Sequential(*layers)
        final_conv = nn.Conv2d(c, num_classes, 1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), final_conv, nn.ReLU(inplace=True),
                                        nn.AdaptiveAvgPool2d(1))
        self.in_chans = in_chans
        self.min_input_size = MIN_SIZE[(version, small_input)]
        self.small_input = small_input
        before_pools = [i - 1 for i, m in enumerate(layers) if isinstance(m, nn.MaxPool2d)]
        self.stage_names = tuple(f"features.{i}" for i in (*before_pools, len(layers) - 1))
        init_weights(self)
        # Paper's code (and torchvision): the class conv starts small, N(0, 0.01).
        nn.init.normal_(final_conv.weight, 0.0, 0.01)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits:
            dropout = self.classifier[0]
            return torch.flatten(F.adaptive_avg_pool2d(dropout(x), 1), 1)
        return torch.flatten(self.classifier(x), 1)


_META = dict(family="squeezenet", paper=PAPER, year=2016, input_size=(3, 224, 224),
             recipe="squeezenet", small_input=SMALL_STEM)


@register_model(**_META, **torchvision_ref(58.092, "SqueezeNet1_0"),
                notes="Table 1's SqueezeNet: AlexNet-level ImageNet accuracy with "
                "50x fewer parameters (1.25M); 8 Fire modules, no FC layers.")
def squeezenet1_0(num_classes=1000, in_chans=3, *, small_input=False, dropout=0.5):
    """squeezenet1_0: the paper's SqueezeNet (Iandola et al. 2016, Table 1). dropout: before
    the final 1x1 conv. small_input: 3x3 stride-1 stem (see SMALL_STEM)."""
    return SqueezeNet("1_0", num_classes, in_chans, dropout, small_input)


@register_model(**_META, **torchvision_ref(58.178, "SqueezeNet1_1"),
                notes="SqueezeNet v1.1 from the authors' repository: 3x3/2 stem with "
                "64 filters, pools moved earlier; 2.4x less computation than v1.0.")
def squeezenet1_1(num_classes=1000, in_chans=3, *, small_input=False, dropout=0.5):
    """squeezenet1_1: SqueezeNet v1.1 (the authors' release after the paper). dropout: before
    the final 1x1 conv. small_input: 3x3 stride-1 stem."""
    return SqueezeNet("1_1", num_classes, in_chans, dropout, small_input)
