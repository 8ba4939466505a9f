"""What a network costs: per-layer profile, conv arithmetic, receptive field, comparison."""

from cnnzoo.analysis.arithmetic import (
    conv_output_shape,
    conv_output_size,
    parse_input_size,
    same_padding,
)
from cnnzoo.analysis.features import feature_info
from cnnzoo.analysis.profile import Layer, Profile, check_input, meta_copy, profile
from cnnzoo.analysis.receptive import RF, stacked_rf
from cnnzoo.analysis.window import LayerField, layer_field, receptive_window
from cnnzoo.models.backbone import ANALYSIS

# Every zoo model's `feature_info` and `create_model(input_size=)` are measured here.
ANALYSIS.feature_info = feature_info
ANALYSIS.check_input = check_input

__all__ = [
    "RF",
    "Layer",
    "LayerField",
    "Profile",
    "check_input",
    "conv_output_shape",
    "conv_output_size",
    "feature_info",
    "layer_field",
    "meta_copy",
    "parse_input_size",
    "profile",
    "receptive_window",
    "same_padding",
    "stacked_rf",
]
