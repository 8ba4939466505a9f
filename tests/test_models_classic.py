"""LeNet-5, AlexNet, ZFNet, VGG, NiN: the published layer lists, parameter counts and
torchvision state-dict layouts, checked layer by layer."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnzoo.errors import CnnzooError, ShapeError
from cnnzoo.models import create_model
from cnnzoo.models.lenet import C3_TABLE, ScaledTanh


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def meta_model(name: str, **kw) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **kw)


def layer_shapes(model: nn.Module, x: torch.Tensor, types) -> list[tuple[int, ...]]:
    """Output shapes (C, H, W) or (F,) of every module of `types`, in forward order."""
    shapes: list[tuple[int, ...]] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape[1:])))
        for m in model.modules()
        if isinstance(m, types)
    ]
    with torch.no_grad():
        model.eval()(x)
    for h in hooks:
        h.remove()
    return shapes


def child_shapes(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """Output shape of each direct child of a Sequential model, by name."""
    shapes: dict[str, tuple[int, ...]] = {}
    with torch.no_grad():
        for name, child in model.eval().named_children():
            x = child(x)
            shapes[name] = tuple(x.shape[1:])
    return shapes


# --------------------------------------------------------------------------- LeNet-5
def test_lenet5_1998_per_layer_params_match_paper():
    m = create_model("lenet5_1998", num_classes=10, in_chans=1)
    got = {k: n_params(getattr(m, k)) for k in ("c1", "s2", "c3", "s4", "c5", "f6")}
    assert got == {"c1": 156, "s2": 12, "c3": 1516, "s4": 32, "c5": 48120, "f6": 10164}
    assert n_params(m.output) == 84 * 10 + 10  # Linear in place of the paper's RBF units


def test_lenet5_1998_full_c3_option():
    m = create_model("lenet5_1998", num_classes=10, in_chans=1, c3_table=False)
    assert n_params(m.c3) == 16 * 6 * 25 + 16


def test_c3_partial_connections_follow_table_one():
    c3 = create_model("lenet5_1998", num_classes=10, in_chans=1).c3
    # The paper's table: 6 maps see 3 contiguous, 6 see 4 contiguous, 3 see 4 discontinuous,
    # 1 sees all six.
    assert [len(t) for t in C3_TABLE] == [3] * 6 + [4] * 9 + [6]
    x = torch.randn(1, 6, 14, 14, requires_grad=True)
    for j, inputs in enumerate(C3_TABLE):
        x.grad = None
        c3(x)[:, j].sum().backward()
        seen = {i for i in range(6) if x.grad[:, i].abs().sum() > 0}
        assert seen == set(inputs), f"C3 map {j}"


def test_scaled_tanh_is_lecuns_function():
    f = ScaledTanh()
    x = torch.linspace(-3, 3, 13)
    assert torch.allclose(f(x), 1.7159 * torch.tanh(2 * x / 3))
    assert abs(f(torch.tensor(1.0)).item() - 1.0) < 1e-3  # chosen so that f(1) = 1


def test_subsampling_is_sum_times_coefficient_plus_bias():
    s2 = create_model("lenet5_1998", num_classes=10, in_chans=1).s2
    with torch.no_grad():
        s2.weight.copy_(torch.arange(1.0, 7.0))
        s2.bias.copy_(torch.full((6,), -0.5))
    x = torch.randn(2, 6, 28, 28)
    want = F.avg_pool2d(x, 2) * 4 * torch.arange(1.0, 7.0).view(1, 6, 1, 1) - 0.5
    assert torch.allclose(s2(x), want, atol=1e-5)


@pytest.mark.parametrize("name", ["lenet5_1998", "lenet5"])
def test_lenet_takes_28_and_32_pixels(name):
    m = create_model(name, num_classes=10, in_chans=1).eval()
    x28 = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        out28 = m(x28)
        assert m(torch.randn(2, 1, 32, 32)).shape == (2, 10)
        # 28x28 is zero-padded to 32x32, as LeCun et al. did for MNIST
        assert torch.allclose(out28, m(F.pad(x28, (2, 2, 2, 2))), atol=1e-6)
    with pytest.raises(ShapeError, match="36x36"):  # refused when built for that size
        create_model(name, num_classes=10, in_chans=1, input_size=(1, 36, 36))


def test_lenet_init_xavier_for_tanh_he_for_relu():
    tanh_w = create_model("lenet5_1998", num_classes=10, in_chans=1).c5.weight
    relu_w = create_model("lenet5", num_classes=10, in_chans=1).c5.weight
    fan_in, fan_out = 16 * 25, 120 * 25
    xavier = 5 / 3 * math.sqrt(2 / (fan_in + fan_out))
    he_fan_out = math.sqrt(2 / fan_out)
    assert abs(tanh_w.std().item() / xavier - 1) < 0.05
    assert abs(relu_w.std().item() / he_fan_out - 1) < 0.05


def test_lenet5_modern_form():
    m = create_model("lenet5", num_classes=10, in_chans=1)
    assert isinstance(m.s2, nn.MaxPool2d) and isinstance(m.act1, nn.ReLU)
    assert n_params(m) == 156 + 2416 + 48120 + 10164 + 850


# --------------------------------------------------------------------------- AlexNet / ZFNet
# torchvision's AlexNet state dict (torchvision/models/alexnet.py), 1000 classes.
TORCHVISION_ALEXNET = {
    "features.0.weight": (64, 3, 11, 11), "features.0.bias": (64,),
    "features.3.weight": (192, 64, 5, 5), "features.3.bias": (192,),
    "features.6.weight": (384, 192, 3, 3), "features.6.bias": (384,),
    "features.8.weight": (256, 384, 3, 3), "features.8.bias": (256,),
    "features.10.weight": (256, 256, 3, 3), "features.10.bias": (256,),
    "classifier.1.weight": (4096, 9216), "classifier.1.bias": (4096,),
    "classifier.4.weight": (4096, 4096), "classifier.4.bias": (4096,),
    "classifier.6.weight": (1000, 4096), "classifier.6.bias": (1000,),
}


def state_shapes(m: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in m.state_dict().items()}


def test_alexnet_matches_torchvision_state_dict():
    m = meta_model("alexnet")
    assert state_shapes(m) == TORCHVISION_ALEXNET
    assert list(m.state_dict()) == list(TORCHVISION_ALEXNET)
    assert n_params(m) == 61_100_840
    assert isinstance(m.avgpool, nn.AdaptiveAvgPool2d) and m.avgpool.output_size == (6, 6)


def test_alexnet_paper_param_counts():
    assert n_params(meta_model("alexnet_paper")) == 62_378_344
    assert n_params(meta_model("alexnet_paper", groups=2)) == 60_965_224
    # dropout 0.5 before FC6 and FC7 (paper sec. 4.2), none before FC8
    kinds = [(type(mod).__name__, getattr(mod, "p", None))
             for mod in meta_model("alexnet_paper").classifier]
    assert kinds == [("Dropout", 0.5), ("Linear", None), ("ReLU", None), ("Dropout", 0.5),
                     ("Linear", None), ("ReLU", None), ("Linear", None)]
    with pytest.raises(CnnzooError, match="groups"):
        meta_model("alexnet_paper", groups=3)


def test_alexnet_paper_layer_shapes_at_227():
    m = meta_model("alexnet_paper")
    x = torch.empty(1, 3, 227, 227, device="meta")
    got = layer_shapes(m, x, (nn.Conv2d, nn.MaxPool2d, nn.Linear))
    assert got == [
        (96, 55, 55), (96, 27, 27),  # CONV1, MAXPOOL1
        (256, 27, 27), (256, 13, 13),  # CONV2, MAXPOOL2
        (384, 13, 13), (384, 13, 13), (256, 13, 13), (256, 6, 6),  # CONV3-5, MAXPOOL3
        (4096,), (4096,), (1000,),  # FC6-8
    ]
    # NORM1 / NORM2 follow CONV1 / CONV2 and precede the pools, as in the paper
    assert layer_shapes(m, x, nn.LocalResponseNorm) == [(96, 55, 55), (256, 27, 27)]


def _kinds(features: nn.Sequential) -> list[str]:
    names = {nn.Conv2d: "conv", nn.ReLU: "relu", nn.LocalResponseNorm: "norm",
             nn.MaxPool2d: "pool"}
    return [names[type(mod)] for mod in features]


def test_alexnet_paper_normalises_before_pooling_zfnet_after():
    # AlexNet sec. 3.5: "Response-normalization layers follow the first and second
    # convolutional layers. Max-pooling layers follow both response-normalization layers".
    assert _kinds(meta_model("alexnet_paper").features)[:8] == [
        "conv", "relu", "norm", "pool", "conv", "relu", "norm", "pool"]
    # Zeiler & Fergus Fig. 3: ReLU, max-pool, then contrast normalisation across maps.
    assert _kinds(meta_model("zfnet").features)[:8] == [
        "conv", "relu", "pool", "norm", "conv", "relu", "pool", "norm"]
    assert "norm" not in _kinds(meta_model("alexnet").features)  # torchvision's: no LRN


def paper_lrn(a: torch.Tensor, k=2.0, n=5, alpha=1e-4, beta=0.75) -> torch.Tensor:
    """Krizhevsky et al. 2012, sec. 3.3, on one position's activations across N maps:
    b_i = a_i / (k + alpha * sum_{j=max(0, i-n/2)}^{min(N-1, i+n/2)} a_j^2)^beta."""
    N = len(a)
    b = torch.empty_like(a)
    for i in range(N):
        s = sum(a[j] ** 2 for j in range(max(0, i - n // 2), min(N - 1, i + n // 2) + 1))
        b[i] = a[i] / (k + alpha * s) ** beta
    return b


@pytest.mark.parametrize("name", ["alexnet_paper", "zfnet"])
def test_lrn_follows_the_papers_formula(name):
    lrn = next(m for m in meta_model(name).modules() if isinstance(m, nn.LocalResponseNorm))
    torch.manual_seed(0)
    a = torch.rand(12, dtype=torch.float64) * 60  # ReLU outputs large enough for LRN to bite
    got = lrn(a.view(1, 12, 1, 1)).view(12)
    want = paper_lrn(a)
    assert torch.allclose(got, want, rtol=1e-9, atol=0)
    # torch's alpha is the paper's alpha times n: the paper's 1e-4 passed as is would
    # normalise 5x more weakly, which this activation vector tells apart.
    weak = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)(a.view(1, 12, 1, 1)).view(12)
    assert not torch.allclose(weak, want, rtol=1e-3)


def test_alexnet_paper_two_gpu_groups():
    m = create_model("alexnet_paper", groups=2)
    convs = [mod for mod in m.features if isinstance(mod, nn.Conv2d)]
    assert [c.groups for c in convs] == [1, 2, 1, 2, 2]  # CONV2/4/5 within each GPU
    conv2 = convs[1]
    x = torch.randn(1, 96, 27, 27, requires_grad=True)
    conv2(x)[:, :128].sum().backward()  # first GPU's 128 maps ...
    assert x.grad[:, :48].abs().sum() > 0
    assert x.grad[:, 48:].abs().sum() == 0  # ... never see the second GPU's 48 inputs


def test_zfnet_layer_shapes_at_224():
    m = meta_model("zfnet")
    got = layer_shapes(m, torch.empty(1, 3, 224, 224, device="meta"),
                       (nn.Conv2d, nn.MaxPool2d, nn.Linear))
    assert got == [
        (96, 110, 110), (96, 55, 55),  # conv1 7x7/2, pool 3/2
        (256, 26, 26), (256, 13, 13),  # conv2 5x5/2, pool 3/2
        (512, 13, 13), (1024, 13, 13), (512, 13, 13), (512, 6, 6),  # 512-1024-512, pool
        (4096,), (4096,), (1000,),
    ]
    conv1 = m.features[0]
    assert conv1.kernel_size == (7, 7) and conv1.stride == (2, 2)


# --------------------------------------------------------------------------- VGG
# torchvision/models/vgg.py: its cfgs and make_layers rules, from which the expected state
# dict is generated independently of cnnzoo's own table.
TV_CFGS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512, "M"],
}


def torchvision_vgg_state(depth: int, bn: bool) -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {}
    i, cin = 0, 3
    for v in TV_CFGS[depth]:
        if v == "M":
            i += 1
            continue
        out[f"features.{i}.weight"] = (v, cin, 3, 3)
        out[f"features.{i}.bias"] = (v,)
        if bn:
            for s in ("weight", "bias", "running_mean", "running_var"):
                out[f"features.{i + 1}.{s}"] = (v,)
            out[f"features.{i + 1}.num_batches_tracked"] = ()
        i += 3 if bn else 2
        cin = v
    for j, (fo, fi) in zip((0, 3, 6), ((4096, 25088), (4096, 4096), (1000, 4096))):
        out[f"classifier.{j}.weight"] = (fo, fi)
        out[f"classifier.{j}.bias"] = (fo,)
    return out


@pytest.mark.parametrize("depth", [11, 13, 16, 19])
@pytest.mark.parametrize("bn", [False, True])
def test_vgg_matches_torchvision_state_dict(depth, bn):
    m = meta_model(f"vgg{depth}{'_bn' if bn else ''}")
    assert state_shapes(m) == torchvision_vgg_state(depth, bn)
    assert m.avgpool.output_size == (7, 7)


def test_vgg_param_counts():
    want = {"vgg11": 132_863_336, "vgg13": 133_047_848, "vgg16": 138_357_544,
            "vgg19": 143_667_240, "vgg16_bn": 138_365_992}
    assert {k: n_params(meta_model(k)) for k in want} == want


def test_vgg16_shapes_match_lecture_table():
    shapes = layer_shapes(meta_model("vgg16"), torch.empty(1, 3, 224, 224, device="meta"),
                          nn.MaxPool2d)
    assert shapes == [(64, 112, 112), (128, 56, 56), (256, 28, 28), (512, 14, 14),
                      (512, 7, 7)]


@pytest.mark.parametrize("name, width", [("alexnet", 256), ("alexnet_paper", 256),
                                         ("zfnet", 512)])
def test_alexnet_small_input_pools_globally_instead_of_replicating(name, width):
    small = meta_model(name, num_classes=10, small_input=True)
    assert small.avgpool.output_size == (1, 1) and small.classifier[1].in_features == width
    m = create_model(name, num_classes=10, in_chans=1, small_input=True).eval()
    seen = []
    m.features.register_forward_hook(lambda _m, _i, out: seen.append(tuple(out.shape[-2:])))
    with torch.no_grad():
        for hw in (28, 32):
            assert m(torch.randn(2, 1, hw, hw)).shape == (2, 10)
    assert all(1 < h < 6 for h, _ in seen)  # the map the old 6x6 pool would have replicated
    big = meta_model(name)  # the ImageNet form keeps torchvision's 6x6 pool and FC6
    assert big.avgpool.output_size == (6, 6) and big.classifier[1].in_features == width * 36


def test_vgg_small_input_classifier():
    m = meta_model("vgg16", small_input=True)
    assert m.avgpool.output_size == (1, 1)
    assert m.classifier[0].in_features == 512
    assert all(p.ceil_mode for p in m.features if isinstance(p, nn.MaxPool2d))


def test_vgg_cs324_matches_assignment():
    m = create_model("vgg_cs324", num_classes=10, in_chans=3)
    # The slide's 14 layers: "conv" = Conv2d(k3, s1, p1) + BatchNorm + ReLU, PyTorch defaults.
    slide = [("conv", 3, 64), ("pool",), ("conv", 64, 128), ("pool",), ("conv", 128, 256),
             ("conv", 256, 256), ("pool",), ("conv", 256, 512), ("conv", 512, 512), ("pool",),
             ("conv", 512, 512), ("conv", 512, 512), ("pool",), ("linear", 512, 10)]
    assert len(slide) == 14
    expected = 0
    for layer in slide:
        if layer[0] == "conv":
            _, cin, cout = layer
            expected += 3 * 3 * cin * cout + cout + 2 * cout  # weight, bias, BN gamma/beta
        elif layer[0] == "linear":
            expected += layer[1] * layer[2] + layer[2]
    assert n_params(m) == expected
    kinds = ["pool" if isinstance(b, nn.MaxPool2d) else "conv" for b in m.features]
    assert kinds == [layer[0] for layer in slide[:-1]]
    for block, layer in zip(m.features, slide):
        if layer[0] == "conv":  # 2D-CONV + BatchNorm + ReLU, in that order
            assert [type(mod) for mod in block] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
            conv = block[0]
            assert (conv.in_channels, conv.out_channels) == layer[1:]
            assert (conv.kernel_size, conv.stride, conv.padding) == ((3, 3), (1, 1), (1, 1))
            assert conv.bias is not None  # PyTorch's default
    assert isinstance(m.classifier, nn.Linear) and m.classifier.in_features == 512
    for pool in (b for b in m.features if isinstance(b, nn.MaxPool2d)):
        assert (pool.kernel_size, pool.stride, pool.padding) == (3, 2, 1)
    shapes = layer_shapes(m, torch.randn(2, 3, 32, 32), nn.MaxPool2d)
    assert [s[1] for s in shapes] == [16, 8, 4, 2, 1]
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 10)


# --------------------------------------------------------------------------- NiN
def mlpconv_params(cin: int, widths: tuple[int, int, int], k: int) -> int:
    a, b, c = widths
    return (k * k * cin * a + a) + (a * b + b) + (b * c + c)


def test_nin_imagenet_params_and_shapes():
    m = meta_model("nin")
    expected = (mlpconv_params(3, (96, 96, 96), 11) + mlpconv_params(96, (256, 256, 256), 5)
                + mlpconv_params(256, (384, 384, 384), 3)
                + mlpconv_params(384, (1024, 1024, 1000), 3))
    assert n_params(m) == expected
    assert not any(isinstance(mod, nn.Linear) for mod in m.modules())  # no FC layers
    shapes = child_shapes(m, torch.empty(1, 3, 224, 224, device="meta"))
    assert shapes == {
        "block1": (96, 54, 54), "pool1": (96, 27, 27), "block2": (256, 27, 27),
        "pool2": (256, 13, 13), "block3": (384, 13, 13), "pool3": (384, 6, 6),
        "drop": (384, 6, 6), "block4": (1000, 6, 6), "gap": (1000, 1, 1), "flatten": (1000,),
    }


def test_nin_cifar_params_and_shapes():
    m = create_model("nin_cifar", num_classes=10, in_chans=3)
    expected = (mlpconv_params(3, (192, 160, 96), 5) + mlpconv_params(96, (192, 192, 192), 5)
                + mlpconv_params(192, (192, 192, 10), 3))
    assert n_params(m) == expected
    shapes = child_shapes(m, torch.randn(2, 3, 32, 32))
    assert shapes == {
        "block1": (96, 32, 32), "pool1": (96, 16, 16), "drop1": (96, 16, 16),
        "block2": (192, 16, 16), "pool2": (192, 8, 8), "drop2": (192, 8, 8),
        "block3": (10, 8, 8), "gap": (10, 1, 1), "flatten": (10,),
    }
    assert isinstance(m.pool1, nn.MaxPool2d) and isinstance(m.pool2, nn.AvgPool2d)
    assert sum(isinstance(mod, nn.Dropout) for mod in m.modules()) == 2


# --------------------------------------------------------------------------- small inputs
IMAGENET_MODELS = ["alexnet", "alexnet_paper", "zfnet", "nin", "vgg11", "vgg11_bn", "vgg13",
                   "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"]


@pytest.mark.parametrize("name", IMAGENET_MODELS)
def test_small_input_forward(name):
    m = create_model(name, num_classes=10, in_chans=1, small_input=True).eval()
    with torch.no_grad():
        for shape in [(2, 1, 28, 28), (2, 1, 32, 32)]:
            assert m(torch.randn(shape)).shape == (2, 10), shape


@pytest.mark.parametrize("name", ["alexnet", "zfnet", "nin"])
def test_stem_collapses_without_small_input(name):
    m = meta_model(name, num_classes=10, in_chans=3)
    with pytest.raises(RuntimeError):
        m(torch.empty(1, 3, 32, 32, device="meta"))


def test_in_chans_reaches_the_stem():
    assert meta_model("alexnet", in_chans=1).features[0].weight.shape[1] == 1
    assert meta_model("vgg16_bn", in_chans=4).features[0].weight.shape[1] == 4
    assert meta_model("nin", in_chans=1).block1[0].weight.shape[1] == 1
    assert meta_model("zfnet", in_chans=2, small_input=True).features[0].kernel_size == (3, 3)


# --------------------------------------------------------------------------- initialisation
INIT_CASES = [("alexnet", 3, 32, {"small_input": True}),
              ("alexnet_paper", 3, 32, {"small_input": True}),
              ("zfnet", 3, 32, {"small_input": True}),
              ("vgg16", 3, 32, {"small_input": True}),
              ("nin", 3, 32, {"small_input": True}),
              ("nin_cifar", 3, 32, {}),
              ("lenet5", 1, 28, {})]


def _class_layer(m: nn.Module) -> nn.Module:
    """The layer that makes the class scores: the last Linear, or NiN's last conv."""
    return [mod for mod in m.modules() if isinstance(mod, (nn.Linear, nn.Conv2d))][-1]


@pytest.mark.parametrize("name, chans, hw, kw", INIT_CASES)
def test_initial_loss_is_near_chance(name, chans, hw, kw):
    # He fan_out on a 4096 -> 10 classifier gave std 0.45 weights and an initial loss of
    # 15-35 (AlexNet's recipe diverged); fan_in keeps the logits at unit scale.
    for seed in range(3):
        torch.manual_seed(seed)
        m = create_model(name, num_classes=10, in_chans=chans, **kw).train()
        x, y = torch.randn(64, chans, hw, hw), torch.randint(0, 10, (64,))
        with torch.no_grad():
            loss = F.cross_entropy(m(x), y).item()
        assert loss < 3.5, (name, seed, loss)  # ln(10) = 2.30
        head = _class_layer(m)
        fan_in = head.weight[0].numel()
        want = math.sqrt(2 / fan_in)
        assert abs(head.weight.std().item() / want - 1) < 0.1, (name, head)


def test_lenet5_1998_trains_every_parameter():
    torch.manual_seed(0)
    m = create_model("lenet5_1998", num_classes=10, in_chans=1)
    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    opt = torch.optim.SGD(m.parameters(), lr=0.05)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        losses.append(loss.item())
        opt.step()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())
    assert losses[-1] < 0.5 * losses[0]  # it can fit a small batch
