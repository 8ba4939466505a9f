"""Activation variance by layer: the lecture's "bad vs good initialisation" tables
(seed 001) redrawn from an untrained 10-layer tanh net."""

import math

import pytest
import torch
import torch.nn as nn
from PIL import Image

from cnnzoo.errors import CnnzooError
from cnnzoo.viz.variance import (
    init_variance,
    init_weights_,
    plain_tanh_net,
    plot_variance,
)


def test_small_init_collapses_layer_by_layer_and_xavier_he_hold():
    v = init_variance("plain")  # 10 tanh layers of 500, 1000 x 500 N(0, 1) input
    assert v.layers == [f"tanh{i}" for i in range(1, 11)]
    small, xavier, he = (v.series[f"init {k}"] for k in ("small", "xavier", "he"))
    # N(0, 0.01^2): each layer scales the variance by about 500 * 1e-4 = 0.05
    for a, b in zip(small, small[1:]):
        assert b < a / 10
    assert small[-1] < 1e-10
    # Xavier N(0, 1/fan_in): tanh keeps it within a few times of the first layer's
    assert min(xavier) > 1e-2 and xavier[-1] > xavier[0] / 10
    assert all(b > a / 2 for a, b in zip(xavier, xavier[1:]))
    assert min(he) > 0.1 and all(b > a * 0.7 for a, b in zip(he, he[1:]))


def test_relu_net_needs_he_not_xavier():
    v = init_variance("plain", ("xavier", "he"), act="relu")
    xavier, he = v.series["init xavier"], v.series["init he"]
    assert xavier[-1] < xavier[0] / 100  # halves each layer: (1/2)^9
    assert he[-1] > he[0] / 3


def test_init_weights_draws_the_named_standard_deviations():
    net = nn.Sequential(nn.Linear(400, 300), nn.Conv2d(16, 8, 5))  # both fan_in 400
    for init, std in (("small", 0.01), ("xavier", 400 ** -0.5), ("he", (2 / 400) ** 0.5)):
        init_weights_(net, init)
        assert net[0].weight.std().item() == pytest.approx(std, rel=0.03)
        assert net[1].weight.std().item() == pytest.approx(std, rel=0.1)
        assert net[0].bias.abs().max() == 0 and net[1].bias.abs().max() == 0
    with pytest.raises(CnnzooError, match="--init must be one of small, xavier, he"):
        init_weights_(net, "glorot")


def test_a_zoo_model_under_each_init_and_the_model_left_alone(tmp_path):
    torch.manual_seed(0)
    net = plain_tanh_net(depth=3, width=20)
    before = [p.clone() for p in net.parameters()]
    v = init_variance(net, ("small",), input_size=(20,))
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    assert v.layers == ["tanh1", "tanh2", "tanh3"]
    lenet = init_variance("lenet5", ("small", "he"), activations_only=False)
    assert "c1" in lenet.layers and "act1" in lenet.layers
    assert all(math.isfinite(x) for s in lenet.series.values() for x in s)
    out = plot_variance(init_variance("plain"), tmp_path / "var.png")
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] >= 700
