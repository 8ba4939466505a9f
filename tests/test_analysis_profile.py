"""The profiler on small hand-built modules: seed-001 sizing example, bottlenecks, RF."""

import math

import pytest
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from cnnzoo.analysis import profile
from cnnzoo.errors import ShapeError


def _sizing_example():
    """Seed 001's sizing example: 3 x (CONV-RELU-CONV-RELU-POOL) with 10 3x3 filters, FC 10."""
    layers, c = [], 3
    for _ in range(3):
        for _ in range(2):
            layers += [nn.Conv2d(c, 10, 3, 1, 1), nn.ReLU()]
            c = 10
        layers.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(10 * 4 * 4, 10))


def test_seed_sizing_example_params_per_layer():
    p = profile(_sizing_example(), (3, 32, 32))
    convs = [r for r in p.layers if r.type == "Conv2d"]
    assert [r.params for r in convs] == [280, 910, 910, 910, 910, 910]
    assert [r.output_shape for r in p.layers if r.type == "MaxPool2d"] == [
        (10, 16, 16), (10, 8, 8), (10, 4, 4)]
    fc = p.layers[-1]
    # The slide prints 10 x 4 x 4 x 10 + 10 = 1600; the product is 1,610.
    assert fc.params == 10 * 4 * 4 * 10 + 10 == 1610
    assert p.params == 280 + 5 * 910 + 1610


def test_user_module_is_not_moved_to_meta():
    m = _sizing_example()
    profile(m, (3, 32, 32))
    assert all(t.device.type == "cpu" for t in m.parameters())


def test_three_3x3_vs_one_7x7_weights_and_receptive_field():
    C = 64
    with torch.device("meta"):
        stack = nn.Sequential(*[nn.Conv2d(C, C, 3, padding=1, bias=False) for _ in range(3)])
        big = nn.Conv2d(C, C, 7, padding=3, bias=False)
    ps, pb = profile(stack, (C, 56, 56)), profile(big, (C, 56, 56))
    assert ps.params == 27 * C * C and pb.params == 49 * C * C
    assert [r.rf for r in ps.layers[1:]] == [3, 5, 7]
    assert pb.layers[-1].rf == 7 == ps.layers[-1].rf
    assert ps.macs == 27 * C * C * 56 * 56 and pb.macs == 49 * C * C * 56 * 56


def test_bottleneck_1x1_on_28x28x192():
    """5x5 conv to 32 channels: 120M multiplications; with a 1x1 to 16 first: 12.4M."""
    with torch.device("meta"):
        direct = nn.Conv2d(192, 32, 5, padding=2, bias=False)
        bottleneck = nn.Sequential(nn.Conv2d(192, 16, 1, bias=False),
                                   nn.Conv2d(16, 32, 5, padding=2, bias=False))
    a, b = profile(direct, (192, 28, 28)).macs, profile(bottleneck, (192, 28, 28)).macs
    assert a == 28 * 28 * 32 * 5 * 5 * 192 and round(a / 1e6) == 120
    assert b == 28 * 28 * 16 * 192 + 28 * 28 * 32 * 5 * 5 * 16 and round(b / 1e5) == 124


class _Branchy(nn.Module):
    """Inception-like branches + a residual add: RF is the widest path's."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(8, 8, 1)
        self.b = nn.Conv2d(8, 8, 5, padding=2)
        self.c = nn.Conv2d(16, 16, 3, stride=2, padding=1)
        self.short = nn.Conv2d(8, 16, 1, stride=2)

    def forward(self, x):
        y = torch.cat([self.a(x), self.b(x)], 1)
        return self.c(y) + self.short(x)


def test_receptive_field_through_branches():
    p = profile(_Branchy(), (8, 16, 16))
    rows = {r.name: r for r in p.layers}
    assert (rows["a"].rf, rows["b"].rf) == (1, 5)
    assert rows["<cat>"].rf == 5 and rows["<cat>"].activations == 16 * 16 * 16
    assert (rows["c"].rf, rows["c"].jump) == (5 + 2, 2)
    assert (rows["short"].rf, rows["short"].jump) == (1, 2)
    assert p.layers[-1].name == "<add>" and p.layers[-1].rf == 7


def test_activation_memory_counts_new_memory_only():
    with torch.device("meta"):
        m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True),
                          nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Flatten())
    p = profile(m, (3, 8, 8))
    acts = {r.name: r.activations for r in p.layers}
    assert acts == {"input": 192, "0": 256, "1": 0, "2": 256, "3": 256, "4": 0}
    assert p.activation_bytes == 4 * p.activations


def test_macs_agree_with_flop_counter_on_grouped_and_linear():
    with torch.device("meta"):
        m = nn.Sequential(nn.Conv2d(8, 32, 3, groups=4), nn.BatchNorm2d(32),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 5))
    p = profile(m, (8, 10, 10))
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        m(torch.empty(1, 8, 10, 10, device="meta"))
    assert p.macs == 32 * 8 * 8 * (8 // 4) * 9 + 32 * 5
    assert 2 * p.macs == fc.get_total_flops()


def test_frozen_params_and_training_memory():
    m = _sizing_example()
    m[0].requires_grad_(False)
    p = profile(m, (3, 32, 32))
    assert p.frozen_params == 280 and p.trainable_params == p.params - 280
    sgd = p.training_memory(batch=8, optimizer="sgd")
    adam = p.training_memory(batch=8, optimizer="adam")
    assert sgd["weights"] == 4 * p.params and sgd["gradients"] == 4 * p.trainable_params
    assert adam["optimizer_state"] == 2 * sgd["gradients"] and sgd["optimizer_state"] == 0
    assert sgd["activations"] == 8 * p.saved_bytes > 0
    assert adam["total"] == sum(v for k, v in adam.items() if k != "total")


def test_dtype_halves_bytes():
    m = _sizing_example()
    p32, p16 = profile(m, (3, 32, 32)), profile(m, (3, 32, 32), dtype="float16")
    assert p16.activation_bytes * 2 == p32.activation_bytes
    assert p16.param_bytes * 2 == p32.param_bytes and p16.macs == p32.macs


def test_too_small_input_is_a_shape_error_with_the_numbers():
    with pytest.raises(ShapeError, match=r"layer 14: pool does not fit: 2x2 pool on a 1x1 input"):
        profile(_sizing_example(), (3, 4, 4))
    # A linear layer that cannot take the flattened size: one clear ShapeError, not torch's.
    with pytest.raises(ShapeError, match=r"cannot take input 3x64x64"):
        profile(_sizing_example(), (3, 64, 64))


def test_as_dict_is_json_ready():
    import json

    d = profile(_sizing_example(), (3, 32, 32)).as_dict(batch=4)
    back = json.loads(json.dumps(d))
    assert back["params"] == 280 + 5 * 910 + 1610 and back["flops"] == 2 * back["macs"]
    assert back["training_memory"]["batch"] == 4
    assert math.prod(back["layers"][0]["output_shape"]) == 3 * 32 * 32
