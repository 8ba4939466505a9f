"""Which input pixels one unit of a layer sees: its receptive-field window in the image.

Measured from the model's own layers on meta tensors (the tracer of profile.py, the closed
form of receptive.py): unit (i, j) of a layer sees rows start_h + i * jump_h ...
start_h + i * jump_h + rf_h - 1 of the input, and the same for columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from cnnzoo.analysis.profile import _size_arg, _trace, meta_copy
from cnnzoo.analysis.receptive import RF
from cnnzoo.errors import CnnzooError, ShapeError
from cnnzoo.models.backbone import get_layer


@dataclass(frozen=True)
class LayerField:
    """The output grid of one layer and the receptive field of its units."""

    layer: str
    shape: tuple[int, ...]  # the layer's output per image, e.g. (C, H, W)
    input_size: tuple[int, int, int]
    rf: RF

    @property
    def spatial(self) -> bool:
        return len(self.shape) == 3

    def window(self, pos) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) of the pixels unit `pos` = (i, j) sees, clipped to the
        image; bottom and right are exclusive, so `img[..., top:bottom, left:right]` is it."""
        if not self.spatial:
            raise ShapeError(f"layer {self.layer} has no spatial map (output "
                             f"{list(self.shape)}): it has no window of its own")
        if not isinstance(self.rf, RF) or self.rf.na:
            raise CnnzooError(f"layer {self.layer}: the receptive-field window is only known "
                              "in closed form (convs and pools, no upsampling)")
        i, j = (int(v) for v in pos)
        h, w = self.shape[1:]
        if not (0 <= i < h and 0 <= j < w):
            raise ShapeError(f"position ({i}, {j}) is outside layer {self.layer}'s {h}x{w} map")
        _, ih, iw = self.input_size
        rf = self.rf
        top, left = rf.start_h + i * rf.jump_h, rf.start_w + j * rf.jump_w
        return (max(int(top), 0), max(int(left), 0),
                min(int(top + rf.rf_h), ih), min(int(left + rf.rf_w), iw))

    def centres(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Input coordinates (row, column, in pixel indices) of the centre of each unit's
        field: [H] and [W] (a field of even size centres between two pixels)."""
        rf = self.rf
        if not self.spatial or not isinstance(rf, RF) or rf.na:
            raise CnnzooError(f"layer {self.layer}: no closed-form receptive field")
        h, w = self.shape[1:]
        rows = float(rf.start_h) + (float(rf.rf_h) - 1) / 2 + torch.arange(h) * float(rf.jump_h)
        cols = float(rf.start_w) + (float(rf.rf_w) - 1) / 2 + torch.arange(w) * float(rf.jump_w)
        return rows, cols


def layer_field(model: nn.Module, layer: str, input_size) -> LayerField:
    """Output shape and receptive field of `layer` (a name from `named_modules()`) for one
    image of `input_size` = (C, H, W). The model itself is not run or changed."""
    get_layer(model, layer)  # UnknownLayerError, with the closest names
    size = _size_arg(input_size)
    net = meta_copy(model).eval()
    name = getattr(model, "model_name", type(model).__name__)
    tracer = _trace(net, torch.empty((1, *size), device="meta"), name, capture={layer})
    if layer not in tracer.captured:
        raise CnnzooError(f"layer {layer} did not run in {name}'s forward (eval mode)")
    shape, rf = tracer.captured[layer]
    return LayerField(layer, tuple(shape), size, rf)


def receptive_window(model: nn.Module, layer: str, input_size, pos) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the input pixels unit `pos` = (i, j) of `layer` sees,
    clipped to the image, bottom/right exclusive. Trace once with `layer_field` when asking
    for many units."""
    return layer_field(model, layer, input_size).window(pos)
