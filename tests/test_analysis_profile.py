"""The profiler on small hand-built modules: seed-001 sizing example, bottlenecks, RF."""

import copy
import math
import time
import warnings

import pytest
import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from cnnzoo.analysis import check_input, meta_copy, profile
from cnnzoo.analysis.profile import MetaUnsupported
from cnnzoo.errors import CnnzooError, ShapeError


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


class _Mixed(nn.Module):
    """The MAC formulas the zoo's models do not exercise: a grouped transposed conv, a 1-D
    conv, a linear layer on a 3-D input and a batched matmul."""

    def __init__(self):
        super().__init__()
        self.up = nn.ConvTranspose2d(8, 12, 3, stride=2, groups=4)
        self.seq = nn.Conv1d(12, 6, 5, groups=3)
        self.proj = nn.Linear(6, 4)

    def forward(self, x):
        s = self.seq(self.up(x).flatten(2))  # 12x9x9 -> 6x77
        t = self.proj(s.transpose(1, 2))  # 77x4
        return t @ t.transpose(1, 2)  # bmm: 77x77


def test_macs_of_transposed_1d_conv_and_batched_matmul():
    with torch.device("meta"):
        m = _Mixed()
    p = profile(m, (8, 4, 4), training=False)
    macs = {r.name: r.macs for r in p.layers if r.macs}
    assert macs == {
        "up": (8 * 4 * 4) * (12 // 4) * 3 * 3,  # each input value meets C_out/g x k x k
        "seq": (6 * 77) * (12 // 3) * 5,
        "proj": 77 * 6 * 4,
        "<bmm>": 77 * 4 * 77,
    }
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        m(torch.empty(1, 8, 4, 4, device="meta"))
    assert 2 * p.macs == fc.get_total_flops()


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


def test_saved_activations_are_what_autograd_keeps():
    """Per image: the conv's input, the ReLU's output, the max-pool's input (that same ReLU
    output, counted once) and its int64 indices, the FC's input; weights are not counted."""
    m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                      nn.Linear(4 * 4 * 4, 10))
    p = profile(m, (3, 8, 8))
    assert p.saved_bytes == 4 * (3 * 8 * 8) + 4 * (4 * 8 * 8) + 8 * (4 * 4 * 4) + 4 * (4 * 4 * 4)
    weights = 4 * (4 * 3 * 9 + 4 + 64 * 10 + 10)
    assert p.training_memory(batch=16, optimizer="adam") == {
        "weights": weights, "gradients": weights, "optimizer_state": 2 * weights,
        "activations": 16 * p.saved_bytes, "total": 4 * weights + 16 * p.saved_bytes}


def test_ceil_mode_pool_is_marked_in_the_window():
    p = profile(nn.Sequential(nn.MaxPool2d(3, 2, ceil_mode=True)), (2, 8, 8))
    assert p.layers[-1].window == "3x3 s2 p0 ceil"  # (8 - 3)/2 + 1 = 3.5 -> 4
    assert p.layers[-1].output_shape == (2, 4, 4)


def test_dtype_halves_bytes():
    m = _sizing_example()
    p32, p16 = profile(m, (3, 32, 32)), profile(m, (3, 32, 32), dtype="float16")
    assert p16.activation_bytes * 2 == p32.activation_bytes
    assert p16.param_bytes * 2 == p32.param_bytes and p16.macs == p32.macs


@pytest.mark.parametrize("size, words", [
    ((3, 4, 4), r"layer 14: pool does not fit: 2x2 pool \(stride 2, padding 0\) on a 1x1 "
     r"input: along H, needs at least 2 pixels \(\(1 - 2 \+ 2\*0\)/2 \+ 1 = 0\.50 < 1\)"),
    ((3, 4, 32), r"layer 14: pool does not fit: .* on a 1x8 input: along H, needs at least 2"),
    ((3, 32, 4), r"layer 14: pool does not fit: .* on a 8x1 input: along W, needs at least 2"),
    # A linear layer that cannot take the flattened size: one clear ShapeError, not torch's.
    ((3, 64, 64), r"cannot take input 3x64x64 \(at layer 16: addmm of 10, 1x640, 160x10\)"),
])
def test_too_small_input_is_a_shape_error_with_the_numbers(size, words):
    with pytest.raises(ShapeError, match=words):
        profile(_sizing_example(), size)


def test_as_dict_is_json_ready():
    import json

    d = profile(_sizing_example(), (3, 32, 32)).as_dict(batch=4)
    back = json.loads(json.dumps(d))
    assert back["params"] == 280 + 5 * 910 + 1610 and back["flops"] == 2 * back["macs"]
    assert back["training_memory"]["batch"] == 4
    assert math.prod(back["layers"][0]["output_shape"]) == 3 * 32 * 32


class DeviceRecorder(TorchDispatchMode):
    """Records the device and size of every tensor any aten op returns."""

    def __init__(self):
        super().__init__()
        self.devices: set[str] = set()
        self.real_bytes = 0
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in (out if isinstance(out, (tuple, list)) else [out]):
            if isinstance(t, torch.Tensor):
                self.ops += 1
                self.devices.add(t.device.type)
                if t.device.type != "meta":
                    self.real_bytes += t.numel() * t.element_size()
        return out


# (a) buffers, (b) no real copy, (c) the caller's module is never changed


class _Normalize(nn.Module):
    """No parameters, only a (CPU) buffer: the mean subtracted from every input."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.full((1, 3, 1, 1), 0.5))

    def forward(self, x):
        return x - self.mean


def test_module_with_only_a_buffer_is_profiled_on_meta():
    m = _Normalize()
    p = profile(m, (3, 8, 8))
    assert p.layers[-1].output_shape == (3, 8, 8) and p.params == 0
    assert m.mean.device.type == "cpu" and float(m.mean[0, 0]) == 0.5


def test_real_module_is_not_cloned_on_the_cpu():
    from cnnzoo import create_model

    real = create_model("resnet18")  # 11.7M real weights (47 MB)
    rec = DeviceRecorder()
    with rec:
        p = profile(real, (3, 224, 224))
    assert p.params == sum(t.numel() for t in real.parameters())
    assert rec.ops > 100 and rec.devices == {"meta"} and rec.real_bytes == 0
    assert all(t.device.type == "cpu" for t in real.state_dict().values())
    assert real.training  # the caller's mode is untouched too


@pytest.mark.parametrize("name, params", [("vgg16", 138_357_544), ("inception_v4", 42_679_816)])
def test_summarising_big_models_allocates_no_real_tensors_and_takes_seconds(name, params):
    rec = DeviceRecorder()
    start = time.perf_counter()
    with rec:
        p = profile(name)  # build, forward and the training-mode pass
    assert time.perf_counter() - start < 30  # ~1 s here; generous for a loaded machine
    assert p.params == params and p.saved_bytes > 0
    assert rec.ops > 100 and rec.devices == {"meta"} and rec.real_bytes == 0


def test_meta_copy_keeps_shared_weights_shared_and_the_original_untouched():
    m = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))
    m[2].weight = m[0].weight  # tied
    m[0].requires_grad_(False)
    c = meta_copy(m)
    assert c[2].weight is c[0].weight and c[0].weight.device.type == "meta"
    assert not c[0].weight.requires_grad and c[2].bias.requires_grad
    assert m[0].weight.device.type == "cpu" and m[0].weight is m[2].weight


def test_dtype_does_not_change_a_meta_module_in_place():
    with torch.device("meta"):
        m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    p16 = profile(m, (3, 8, 8), dtype="float16")
    assert p16.param_bytes == 2 * p16.params
    assert {t.dtype for t in m.state_dict().values() if t.is_floating_point()} == {
        torch.float32}
    assert m.training


# (d) only genuine shape failures become ShapeError; bugs in a forward surface unchanged


class _Raises(nn.Module):
    def __init__(self, exc_type):
        super().__init__()
        self.conv, self.exc_type = nn.Conv2d(3, 3, 3), exc_type

    def forward(self, x):
        x = self.conv(x)
        raise self.exc_type(f"bug after a conv to {list(x.shape)}")


@pytest.mark.parametrize("exc_type", [ValueError, IndexError, RuntimeError, TypeError])
def test_a_bug_in_forward_is_not_reported_as_a_shape_error(exc_type):
    with pytest.raises(exc_type) as info:
        profile(_Raises(exc_type), (3, 8, 8))
    assert type(info.value) is exc_type and not isinstance(info.value, CnnzooError)
    assert str(info.value) == "bug after a conv to [1, 3, 6, 6]"


def test_an_op_refusing_the_shapes_is_a_shape_error_naming_the_layer():
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    profile(m, (3, 8, 8))
    with pytest.raises(ShapeError, match=r"Sequential cannot take input 3x9x9 \(at layer 2: "
                       r"addmm of .*1x196.*144"):
        profile(m, (3, 9, 9))
    with pytest.raises(ShapeError, match=r"cannot take input 1x8x8 \(at layer 0: convolution"):
        profile(m, (1, 8, 8))


class _DataDependent(nn.Module):
    def forward(self, x):
        return x * 2 if x.mean() > 0 else x  # needs the values, which meta tensors lack


class _MakesCpuTensors(nn.Module):
    def forward(self, x):
        return x + torch.ones(x.shape[1:])  # no device=: a CPU tensor


@pytest.mark.parametrize("module, words", [(_DataDependent(), "needs real data"),
                                           (_MakesCpuTensors(), "mixes a cpu tensor")])
def test_a_forward_that_cannot_run_on_meta_says_so(module, words):
    with pytest.raises(MetaUnsupported, match=words) as info:
        profile(module, (3, 8, 8))
    assert "meta tensors" in str(info.value) and not isinstance(info.value, ShapeError)
    with pytest.warns(UserWarning, match="input size not checked"):
        check_input(module, (3, 8, 8))  # a trainer must not refuse a model that works


def test_check_input_passes_quietly_and_leaves_the_module_alone():
    m = _sizing_example()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_input(m, (3, 32, 32))
    assert m.training and all(t.device.type == "cpu" for t in m.parameters())
    with pytest.raises(ShapeError, match="layer 14: pool does not fit"):
        check_input(m, (3, 4, 4))
    with pytest.raises(ShapeError, match="input_size"):
        check_input(m, (3, 32))


# (e) receptive fields through upsampling, checked against the gradient of a real network


def _true_rf(m: nn.Module, c: int, size: int) -> int:
    """Widest input extent with a nonzero gradient, over 8 outputs mid-map (every alignment
    of these nets' grids; all weights 1, so no cancellation)."""
    m = copy.deepcopy(m).double()
    for mod in m.modules():
        if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.ones_(mod.weight)
            nn.init.zeros_(mod.bias)
    x = torch.ones(1, c, size, size, dtype=torch.float64, requires_grad=True)
    out = m(x)
    widest = 0
    mid = out.shape[-1] // 2
    for j in range(max(mid - 4, 0), min(mid + 4, out.shape[-1])):
        (g,) = torch.autograd.grad(out[0, :, out.shape[-2] // 2, j].sum(), x, retain_graph=True)
        cols = g[0].abs().sum((0, 1)).nonzero()
        widest = max(widest, int(cols.max() - cols.min() + 1))
    return widest


class _UNet(nn.Module):
    """Two stride-2 convs down, nearest and transposed-conv up, skip connections."""

    def __init__(self):
        super().__init__()
        self.d1, self.d2 = nn.Conv2d(2, 2, 3, 2, 1), nn.Conv2d(2, 2, 3, 2, 1)
        self.up1, self.c = nn.Upsample(scale_factor=2), nn.Conv2d(4, 2, 3, padding=1)
        self.up2, self.out = nn.ConvTranspose2d(2, 2, 4, 2, 1), nn.Conv2d(4, 2, 3, padding=1)

    def forward(self, x):
        a = self.d1(x)
        y = self.c(torch.cat([self.up1(self.d2(a)), a], 1))
        return self.out(torch.cat([self.up2(y), x], 1))


RF_CASES = {  # name: (module, input size, the tool's RF, its jump)
    "transposed 3x3/2 + conv 3x3": (
        nn.Sequential(nn.ConvTranspose2d(2, 2, 3, 2, 1), nn.Conv2d(2, 2, 3, padding=1)),
        24, 3, "1/2"),
    "transposed 5x5/3": (nn.Sequential(nn.ConvTranspose2d(2, 2, 5, 3)), 12, 2, "1/3"),
    "nearest x2 + conv 4x4": (
        nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(2, 2, 4, padding=1)), 16, 3,
        "1/2"),
    "conv /2, bilinear x2, conv 3x3": (
        nn.Sequential(nn.Conv2d(2, 2, 3, 2, 1), nn.Upsample(scale_factor=2, mode="bilinear"),
                      nn.Conv2d(2, 2, 3, padding=1)), 24, 7, 1),
    "bicubic x3 + conv 3x3": (
        nn.Sequential(nn.Upsample(scale_factor=3, mode="bicubic"),
                      nn.Conv2d(2, 2, 3, padding=1)), 12, 5, "1/3"),
    "pixel shuffle x2 + conv 3x3": (
        nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), nn.PixelShuffle(2),
                      nn.Conv2d(2, 2, 3, padding=1)), 16, 4, "1/2"),
    "down /4 then up x4 (k=2 transposed)": (
        nn.Sequential(nn.Conv2d(2, 2, 3, 2, 1), nn.Conv2d(2, 2, 3, 2, 1),
                      nn.ConvTranspose2d(2, 2, 2, 2), nn.ConvTranspose2d(2, 2, 2, 2),
                      nn.Conv2d(2, 2, 3, padding=1)), 32, 11, 1),
    "U-Net with skips": (_UNet(), 32, 15, 1),
    "adaptive pool 8 -> 7 (uneven bins)": (nn.Sequential(nn.AdaptiveAvgPool2d(7)), 8, 2, "8/7"),
    "adaptive pool 14 -> 4": (nn.Sequential(nn.AdaptiveAvgPool2d(4)), 14, 4, "7/2"),
}


@pytest.mark.parametrize("case", list(RF_CASES))
def test_receptive_field_through_upsampling_matches_the_gradient(case):
    m, size, rf, jump = RF_CASES[case]
    last = profile(m, (2, size, size), training=False).layers[-1]
    assert (last.rf, last.jump) == (rf, jump)
    assert _true_rf(m, 2, size) == rf


class _Sequence1d(nn.Module):
    """Treats each image row as a sequence: flatten H x W, then a 1-D conv."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(3, 3, 3)

    def forward(self, x):
        return self.conv(x.flatten(2))


def test_receptive_field_of_a_1d_conv_is_marked_not_available():
    p = profile(_Sequence1d(), (3, 4, 4))
    conv = next(r for r in p.layers if r.name == "conv")
    assert conv.rf == "n/a" and conv.jump == "n/a" and conv.window == "3 s1 p0"
    assert any("RF n/a" in n for n in p.notes)
    d = p.as_dict()
    assert d["layers"][-1]["rf"] == "n/a"
