"""`feature_info` of a network: each stage's output channels, reduction (effective stride)
and receptive field, measured by the tracer on meta tensors (no data, no memory).

Plugged into every zoo model's `feature_info` property (cnnzoo.models.backbone.ANALYSIS),
so the numbers are measured, never typed by hand.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from cnnzoo.analysis.profile import _size_arg, _trace, meta_copy


def feature_info(model: nn.Module, input_size=None, stages=None) -> list[dict]:
    """[{"module", "num_chs", "reduction", "receptive_field"}] for `stages` (default: the
    model's `stage_names`), at `input_size` (default: the model's `default_input_size`).

    The reduction is the effective stride ("jump") of the stage's output grid, the receptive
    field the input pixels one output unit sees along H (an "HxW" string where they differ).
    """
    stages = list(stages if stages is not None else getattr(model, "stage_names", ()))
    size = _size_arg(input_size or getattr(model, "default_input_size", None) or
                     (getattr(model, "in_chans", 3), 224, 224))
    net = meta_copy(model).eval()
    x = torch.empty((1, *size), device="meta")
    name = getattr(model, "model_name", type(model).__name__)
    tracer = _trace(net, x, name, capture=set(stages))
    info = []
    for s in stages:
        shape, rf = tracer.captured[s]
        info.append({"module": s, "num_chs": shape[0], "reduction": rf.jump,
                     "receptive_field": rf.rf})
    return info
