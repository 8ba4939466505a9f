"""The viz pictures without a trained run: colour filter grids, feature maps, the streaming
top-k on images whose answer is known, and the library's one-line errors."""

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from cnnzoo.errors import CnnzooError, ShapeError
from cnnzoo.models import create_model
from cnnzoo.viz.activations import layer_activations, plot_activations
from cnnzoo.viz.common import default_layer
from cnnzoo.viz.filters import RunFilters, conv_layers, conv_weight, plot_filters
from cnnzoo.viz.top_patches import plot_top_patches, top_patches


def test_rgb_kernels_are_drawn_in_colour(tmp_path):
    w = torch.zeros(4, 3, 5, 5)
    for k in range(4):
        w[k, k % 3] = 1.0  # a pure red, green, blue, red filter
    out = plot_filters(RunFilters("net", "conv1", "best", w), tmp_path / "f.png")
    a = np.asarray(Image.open(out).convert("RGB")).astype(int)
    spread = (a.max(2) - a.min(2))  # 0 for grey pixels
    assert (spread > 200).sum() > 500  # saturated colour tiles, not grey ones


def test_conv_weight_defaults_to_the_first_conv_and_names_the_valid_ones():
    net = create_model("lenet5")
    assert conv_layers(net) == ["c1", "c3", "c5"]
    name, w = conv_weight(net)
    assert name == "c1" and w.shape == (6, 1, 5, 5)
    assert conv_weight(net, "c3")[1].shape == (16, 6, 5, 5)
    with pytest.raises(ShapeError, match=r"layer act1 \(ReLU\) has no conv kernels; conv "
                                         "layers: c1, c3, c5"):
        conv_weight(net, "act1")
    with pytest.raises(CnnzooError, match="no layer 'c9'"):
        conv_weight(net, "c9")


def test_feature_maps_of_a_layer_and_the_figure(tmp_path):
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1, bias=False), nn.ReLU(inplace=True),
                        nn.Flatten(), nn.Linear(48, 5))
    with torch.no_grad():
        net[0].weight.zero_()
        net[0].weight[1, 0, 1, 1] = -2.0  # channel 1 = -2 x
    x = torch.rand(1, 4, 4)
    a = layer_activations(net, x, "0")
    assert torch.allclose(a.maps[1], -2 * x[0])  # before the in-place ReLU
    assert layer_activations(net, x, "1").maps[1].max() == 0  # after it
    assert plot_activations(a, tmp_path / "a.png").exists()
    fc = layer_activations(net, x, "3")
    assert fc.maps.shape == (5,)
    assert plot_activations(fc, tmp_path / "fc.png").exists()


def _peaks():
    """Ten 1x6x6 images; image i has one bright pixel of value v[i] at (i % 6, 5 - i % 6)."""
    v = [0.2, 0.9, 0.5, 0.9, 0.1, 0.7, 0.9, 0.3, 0.8, 0.6]
    x = torch.zeros(10, 1, 6, 6)
    for i, val in enumerate(v):
        x[i, 0, i % 6, 5 - i % 6] = val
    return x, torch.arange(10), v


def test_top_k_is_the_k_largest_ties_to_the_earlier_image(tmp_path):
    x, y, v = _peaks()
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, bias=False))
    with torch.no_grad():
        net[0].weight.zero_()
        net[0].weight[1, 0, 1, 1] = 1.0  # channel 1 copies the input
    batches = [(x[i:i + 3], y[i:i + 3]) for i in range(0, 10, 3)]
    t = top_patches(net, iter(batches), "0", 1, mean=[0.0], std=[1.0], k=4)
    assert [p.index for p in t.patches] == [1, 3, 6, 8]  # 0.9 three times, then 0.8
    assert [p.value for p in t.patches] == pytest.approx([0.9, 0.9, 0.9, 0.8])
    p = t.patches[1]  # image 3: the pixel at (3, 2); a 3x3 field centred there
    assert p.position == (3, 2) and p.window == (2, 1, 5, 4)
    assert torch.equal(p.crop, x[3][:, 2:5, 1:4])
    corner = top_patches(net, iter(batches), "0", 1, mean=[0.0], std=[1.0], k=9)
    q = next(q for q in corner.patches if q.index == 0)  # peak at (0, 5): clipped field
    assert q.window == (0, 4, 2, 6) and q.crop.shape == (1, 2, 2)
    assert plot_top_patches(corner, tmp_path / "t.png").exists()


def test_top_patches_reject_a_channel_or_layer_they_cannot_use():
    x, y, _ = _peaks()
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(32, 3))
    with pytest.raises(CnnzooError, match=r"--channel 2 out of range: layer 0 has 2 channels"
                                          r" \(0-1\)"):
        top_patches(net, [(x, y)], "0", 2, mean=[0.0], std=[1.0])
    with pytest.raises(ShapeError, match="layer 2 outputs \\[3\\], not feature maps"):
        top_patches(net, [(x, y)], "2", 0, mean=[0.0], std=[1.0])


def test_default_cam_layer_is_the_last_stage_with_a_spatial_map():
    assert default_layer(create_model("lenet5"), (1, 28, 28)) == "s4"
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(2, 3))
    assert default_layer(net, (1, 8, 8)) == "1"  # the pooled 1x1 map is no use to a CAM
