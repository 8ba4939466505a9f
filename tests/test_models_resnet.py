"""ResNet family: torchvision-exact ImageNet nets, plain nets, CIFAR, pre-activation, wide,
ResNeXt and stochastic depth."""

import math

import heavy
import pytest
import torch
import torch.nn as nn

from cnnzoo import create_model, list_models, model_info
from cnnzoo.errors import CnnzooError
from cnnzoo.models.resnet import (
    BasicBlock,
    Bottleneck,
    PreActBasicBlock,
    ResNetConfigError,
    ZeroPadShortcut,
    cifar_resnet,
    last_survival,
    preact_cifar_resnet,
    survival_probs,
    wrn,
)

ALL = list_models(family="resnet")
IMAGENET = [n for n in ALL if model_info(n).input_size == (3, 224, 224)]
CIFAR = [n for n in ALL if model_info(n).input_size == (3, 32, 32)]
TORCHVISION_NAMED = [n for n in IMAGENET if n.startswith(("resnet", "resnext", "wide_resnet"))]

# torchvision's documented parameter counts (1000 classes).
TV_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "wide_resnet50_2": 68_883_240,
    "wide_resnet101_2": 126_886_696,
    "resnext50_32x4d": 25_028_904,
    "resnext101_32x8d": 88_791_336,
}
# Papers' parameter counts (CIFAR-10 heads), checked within 2%.
PAPER_PARAMS = {
    "resnet20": 0.27e6,
    "resnet32": 0.46e6,
    "resnet44": 0.66e6,
    "resnet56": 0.85e6,
    "resnet110": 1.7e6,
    "resnet1202": 19.4e6,
    "preact_resnet110": 1.7e6,
    "preact_resnet164": 1.7e6,
    "preact_resnet1001": 10.2e6,
    "wrn16_8": 11.0e6,
    "wrn28_10": 36.5e6,
    "wrn40_4": 8.9e6,
}
# Stage depths and (groups, width_per_group) by torchvision's rules.
TV_DEPTHS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3),
             152: (3, 8, 36, 3)}


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def meta_model(name, **kw):
    with torch.device("meta"):
        return create_model(name, **kw)


def tv_arch(name):
    """(depth, groups, width_per_group) from a torchvision-style model name."""
    if name.startswith("wide_resnet"):
        return int(name[len("wide_resnet"):].split("_")[0]), 1, 128
    if name.startswith("resnext"):
        depth, setting = name[len("resnext"):].split("_")
        groups, width = setting.rstrip("d").split("x")
        return int(depth), int(groups), int(width)
    return int(name[len("resnet"):]), 1, 64


def tv_state_shapes(depth, groups=1, width_per_group=64, num_classes=1000):
    """The state dict torchvision's ResNet(block, layers, groups, width_per_group) holds."""
    bottleneck = depth >= 50
    exp = 4 if bottleneck else 1
    sd = {}

    def conv(key, cout, cin, k):
        sd[key + ".weight"] = (cout, cin, k, k)

    def bn(key, c):
        for p in ("weight", "bias", "running_mean", "running_var"):
            sd[f"{key}.{p}"] = (c,)
        sd[key + ".num_batches_tracked"] = ()

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    inplanes = 64
    for i, (planes, n) in enumerate(zip((64, 128, 256, 512), TV_DEPTHS[depth])):
        for j in range(n):
            p = f"layer{i + 1}.{j}"
            stride = 2 if i > 0 and j == 0 else 1
            if bottleneck:
                width = int(planes * (width_per_group / 64.0)) * groups
                conv(p + ".conv1", width, inplanes, 1)
                bn(p + ".bn1", width)
                conv(p + ".conv2", width, width // groups, 3)
                bn(p + ".bn2", width)
                conv(p + ".conv3", planes * 4, width, 1)
                bn(p + ".bn3", planes * 4)
            else:
                conv(p + ".conv1", planes, inplanes, 3)
                bn(p + ".bn1", planes)
                conv(p + ".conv2", planes, planes, 3)
                bn(p + ".bn2", planes)
            if j == 0 and (stride != 1 or inplanes != planes * exp):
                conv(p + ".downsample.0", planes * exp, inplanes, 1)
                bn(p + ".downsample.1", planes * exp)
            inplanes = planes * exp
    sd["fc.weight"] = (num_classes, 512 * exp)
    sd["fc.bias"] = (num_classes,)
    return sd


# --- ImageNet: torchvision compatibility ---------------------------------------------------

@pytest.mark.parametrize("name", sorted(TV_PARAMS))
def test_torchvision_param_counts_exact(name):
    assert n_params(meta_model(name)) == TV_PARAMS[name]


@pytest.mark.parametrize("name", TORCHVISION_NAMED)
def test_state_dict_keys_and_shapes_match_torchvision(name):
    expected = tv_state_shapes(*tv_arch(name))
    got = {k: tuple(v.shape) for k, v in meta_model(name).state_dict().items()}
    assert list(got) == list(expected)  # same keys, same order
    assert got == expected


def test_torchvision_style_weights_load_strict_and_run():
    torch.manual_seed(0)
    sd = {k: torch.randn(s) if s else torch.tensor(0) for k, s in tv_state_shapes(18).items()}
    for k in sd:
        if k.endswith("running_var"):
            sd[k] = sd[k].abs() + 0.5
    m = create_model("resnet18")
    m.load_state_dict(sd, strict=True)
    assert torch.equal(m.layer3[0].downsample[0].weight, sd["layer3.0.downsample.0.weight"])


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_real_forward_at_224(name):
    torch.manual_seed(0)
    m = create_model(name).eval()
    with torch.no_grad():
        y = m(torch.randn(1, 3, 224, 224))
    assert y.shape == (1, 1000) and torch.isfinite(y).all()


@pytest.mark.parametrize("name", heavy.by_name(ALL))
def test_every_model_forwards_default_input_on_meta(name):
    info = model_info(name)
    m = meta_model(name, num_classes=7).eval()
    y = m(torch.empty(1, *info.input_size, device="meta"))
    assert y.shape == (1, 7)


@pytest.mark.parametrize("name", IMAGENET)
def test_imagenet_models_small_input_on_meta(name):
    m = meta_model(name, num_classes=10, in_chans=1, small_input=True).eval()
    assert m.conv1.kernel_size == (3, 3) and m.conv1.stride == (1, 1)
    assert isinstance(m.maxpool, nn.Identity)
    assert m(torch.empty(2, 1, 28, 28, device="meta")).shape == (2, 10)


@pytest.mark.parametrize("name", ["resnet18", "plain18", "resnext50_32x4d", "preact_resnet18"])
def test_small_input_real_forward(name):
    torch.manual_seed(0)
    m = create_model(name, num_classes=10, in_chans=1, small_input=True).eval()
    with torch.no_grad():
        feats = m.forward_features(torch.randn(1, 1, 32, 32))
        assert feats.shape[-2:] == (4, 4)  # 32 / 8: three stride-2 stages, none in the stem
        assert m(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_stride_in_1x1_knob_moves_the_stride_only():
    v15 = meta_model("resnet50")
    paper = meta_model("resnet50", stride_in_1x1=True)
    assert (v15.layer2[0].conv1.stride, v15.layer2[0].conv2.stride) == ((1, 1), (2, 2))
    assert (paper.layer2[0].conv1.stride, paper.layer2[0].conv2.stride) == ((2, 2), (1, 1))
    assert {k: v.shape for k, v in v15.state_dict().items()} == {
        k: v.shape for k, v in paper.state_dict().items()}
    x = torch.empty(1, 3, 224, 224, device="meta")
    assert paper.eval()(x).shape == (1, 1000)


def test_zero_init_residual_zeroes_each_branch_last_bn():
    m18 = create_model("resnet18", zero_init_residual=True)
    blocks = [b for b in m18.modules() if isinstance(b, BasicBlock)]
    assert len(blocks) == 8 and all((b.bn2.weight == 0).all() for b in blocks)
    assert all((b.bn1.weight == 1).all() for b in blocks)
    m50 = create_model("resnet50", zero_init_residual=True)
    blocks = [b for b in m50.modules() if isinstance(b, Bottleneck)]
    assert len(blocks) == 16 and all((b.bn3.weight == 0).all() for b in blocks)
    assert all((b.bn2.weight == 1).all() for b in blocks)
    assert (create_model("resnet18").layer1[0].bn2.weight == 1).all()


def test_resnext_cardinality_knobs_and_ablation_widths():
    m = meta_model("resnext50_8x14d")
    assert m.layer1[0].conv2.groups == 8 and m.layer1[0].conv2.out_channels == 8 * 14
    assert m.layer4[0].conv2.out_channels == 8 * 14 * 8  # doubles per stage
    custom = meta_model("resnet50", groups=32, width_per_group=4)
    assert n_params(custom) == TV_PARAMS["resnext50_32x4d"]
    assert n_params(meta_model("resnext50_1x64d")) == TV_PARAMS["resnet50"]


def test_metadata_quotes_the_lectures():
    assert model_info("resnet18").top1_err == 27.88
    assert model_info("resnet34").top1_err == 25.03
    assert model_info("resnet50").top1_err == 23.9  # the ResNeXt table's ResNet-50 1x64d row
    assert model_info("resnet101").top1_err == 22.0  # ... and its ResNet-101 1x64d row
    assert model_info("plain18").top1_err == 27.94
    assert model_info("plain34").top1_err == 28.54
    assert model_info("resnet152").top5_err == 3.57
    table = {"50_1x64d": 23.9, "50_2x40d": 23.0, "50_4x24d": 22.6, "50_8x14d": 22.3,
             "50_32x4d": 22.2, "101_1x64d": 22.0, "101_2x40d": 21.7, "101_4x24d": 21.4,
             "101_8x14d": 21.3, "101_32x4d": 21.2}
    for setting, err in table.items():
        assert model_info(f"resnext{setting}").top1_err == err
    for n in IMAGENET:
        assert model_info(n).recipe == "resnet" and model_info(n).small_input
    for n in CIFAR:
        assert model_info(n).recipe == "resnet_cifar" and model_info(n).small_input == ""
    assert "stochastic_depth" in model_info("wrn28_10").knobs
    assert {"groups", "width_per_group", "stride_in_1x1"} <= set(model_info("resnet50").knobs)


# --- plain nets -----------------------------------------------------------------------------

def test_plain_nets_have_the_same_layers_and_no_shortcuts():
    res, plain = meta_model("resnet34"), meta_model("plain34")
    res_keys = set(res.state_dict())
    plain_keys = set(plain.state_dict())
    assert plain_keys == {k for k in res_keys if ".downsample." not in k}
    assert not any(isinstance(m, ZeroPadShortcut) for m in create_model("plain_cifar20").modules())
    assert n_params(meta_model("plain_cifar56")) == n_params(meta_model("resnet56"))


def test_plain_block_output_is_the_branch_alone():
    torch.manual_seed(0)
    plain = BasicBlock(8, 8, residual=False).eval()
    res = BasicBlock(8, 8).eval()
    res.load_state_dict(plain.state_dict())
    x = torch.rand(2, 8, 6, 6)
    with torch.no_grad():
        branch = plain.bn2(plain.conv2(torch.relu(plain.bn1(plain.conv1(x)))))
        assert torch.allclose(plain(x), torch.relu(branch))
        assert torch.allclose(res(x), torch.relu(branch + x))


# --- CIFAR ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PAPER_PARAMS))
def test_cifar_param_counts_match_papers_within_2pct(name):
    got = n_params(meta_model(name, num_classes=10))
    assert abs(got - PAPER_PARAMS[name]) / PAPER_PARAMS[name] < 0.02, got


def test_cifar_resnet_layout_6n_plus_2():
    m = create_model("resnet56", num_classes=10)
    assert [len(m.layer1), len(m.layer2), len(m.layer3)] == [9, 9, 9]
    convs = [c for c in m.modules() if isinstance(c, nn.Conv2d)]
    assert len(convs) + 1 == 56  # + the FC layer
    assert [m.layer1[0].conv1.out_channels, m.layer2[0].conv1.out_channels,
            m.layer3[0].conv1.out_channels] == [16, 32, 64]
    assert isinstance(m.layer2[0].downsample, ZeroPadShortcut)
    with pytest.raises(ResNetConfigError, match="6n\\+2"):
        cifar_resnet(21)


def test_zero_pad_shortcut_is_parameter_free_and_pads_with_zeros():
    x = torch.randn(2, 16, 8, 8)
    y = ZeroPadShortcut(2, 16)(x)
    assert y.shape == (2, 32, 4, 4)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2]) and (y[:, 16:] == 0).all()


def test_option_b_adds_exactly_two_projections():
    a = n_params(meta_model("resnet20", num_classes=10))
    b = n_params(meta_model("resnet20", num_classes=10, shortcut="B"))
    assert b - a == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)  # 1x1 conv + BN per change
    with pytest.raises(ResNetConfigError, match="shortcut"):
        create_model("resnet20", shortcut="C")


@pytest.mark.parametrize("name", ["resnet20", "plain_cifar20", "preact_resnet110"])
def test_cifar_nets_take_one_channel_28px(name):
    torch.manual_seed(0)
    m = create_model(name, num_classes=10, in_chans=1).eval()
    with torch.no_grad():
        assert m(torch.randn(2, 1, 28, 28)).shape == (2, 10)
        assert m.forward_features(torch.randn(1, 1, 28, 28)).shape[-2:] == (7, 7)
    assert create_model(name, num_classes=10)(torch.randn(2, 3, 32, 32)).shape == (2, 10)


# --- pre-activation -----------------------------------------------------------------------------

def test_preact_block_normalises_its_input_before_any_conv():
    m = create_model("preact_resnet110", num_classes=10).eval()
    block = m.layer2[3]
    seen = {}
    block.bn1.register_forward_hook(lambda mod, inp, out: seen.setdefault("bn1", inp[0]))
    block.register_forward_hook(lambda mod, inp, out: seen.setdefault("block", inp[0]))
    with torch.no_grad():
        m(torch.randn(1, 3, 32, 32))
    assert torch.equal(seen["bn1"], seen["block"])
    assert m.final_bn is not None and m.final_bn.num_features == 64


def test_preact_identity_path_is_clean_with_zero_init():
    torch.manual_seed(0)
    for m in (preact_cifar_resnet(164, zero_init_residual=True),
              create_model("preact_resnet110", zero_init_residual=True)):
        m.eval()
        x = torch.randn(1, 16, 8, 8)  # layer1 input may be negative: no ReLU on the path
        with torch.no_grad():
            if isinstance(m.layer1[0].downsample, nn.Module):  # bottleneck: 16 -> 64
                x = m.layer1[0](x)
                assert torch.allclose(m.layer1[1:](x), x)
            else:
                assert torch.allclose(m.layer1(x), x)


def test_preact_bottleneck_depth_9n_plus_2():
    m = meta_model("preact_resnet164", num_classes=10)
    assert [len(m.layer1), len(m.layer2), len(m.layer3)] == [18, 18, 18]
    assert m.fc.in_features == 256
    with pytest.raises(ResNetConfigError, match="9n\\+2"):
        preact_cifar_resnet(165, bottleneck=True)


# --- wide -----------------------------------------------------------------------------------------

def test_wrn_widths_depth_and_dropout():
    m = wrn(16, 8, dropout=0.3)
    assert [m.layer1[0].conv1.out_channels, m.layer2[0].conv1.out_channels,
            m.layer3[0].conv1.out_channels] == [128, 256, 512]
    assert [len(m.layer1), len(m.layer2), len(m.layer3)] == [2, 2, 2]
    drops = [b.dropout for b in m.modules() if isinstance(b, PreActBasicBlock)]
    assert len(drops) == 6 and all(isinstance(d, nn.Dropout) and d.p == 0.3 for d in drops)
    toy = wrn(10, 2).eval()
    with torch.no_grad():
        assert toy(torch.randn(2, 3, 32, 32)).shape == (2, 10)
        assert toy.forward_features(torch.randn(1, 3, 32, 32)).shape[1] == 128
    with pytest.raises(CnnzooError, match="6n\\+4"):
        wrn(27, 10)


def test_generic_wrn_is_registered_with_depth_and_width_knobs():
    assert {"depth", "widen_factor", "dropout"} <= set(model_info("wrn").knobs)
    assert n_params(meta_model("wrn")) == n_params(meta_model("wrn28_10"))
    assert n_params(meta_model("wrn", depth=16, widen_factor=4)) == n_params(wrn(16, 4))
    m = create_model("wrn", depth=10, widen_factor=2, dropout=0.3, num_classes=5, in_chans=1)
    assert m.layer3[0].conv1.out_channels == 128 and m.fc.out_features == 5
    assert m(torch.randn(2, 1, 28, 28)).shape == (2, 5)
    with pytest.raises(ResNetConfigError, match="6n\\+4"):
        create_model("wrn", depth=27)


def test_plain_cifar1202_is_resnet1202_without_shortcuts():
    plain, res = meta_model("plain_cifar1202"), meta_model("resnet1202")
    assert n_params(plain) == n_params(res)  # option-A shortcuts have no parameters
    assert [len(plain.layer1), len(plain.layer2), len(plain.layer3)] == [200, 200, 200]
    assert not any(isinstance(m, ZeroPadShortcut) for m in plain.modules())


# --- stochastic depth ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["resnet56", "resnet50", "preact_resnet164", "wrn16_8",
                                  "resnext50_32x4d"])
def test_survival_probability_decays_linearly(name):
    m = meta_model(name, stochastic_depth=0.5)
    probs = survival_probs(m)
    L = len(probs)
    assert probs == pytest.approx([1 - l / L * (1 - 0.5) for l in range(1, L + 1)])
    assert probs[-1] == pytest.approx(0.5)
    assert survival_probs(meta_model(name)) == [1.0] * L  # 0 = off


def _toy_block(drop_prob):
    torch.manual_seed(0)
    block = BasicBlock(4, 4, drop_prob=drop_prob)
    nn.init.zeros_(block.bn2.weight)
    nn.init.ones_(block.bn2.bias)  # the branch is exactly 1 everywhere when kept
    return block


def test_dropped_fraction_is_binomial():
    p, n = 0.3, 20_000
    block = _toy_block(p).train()
    x = torch.rand(n, 4, 3, 3)
    with torch.no_grad():
        y = block(x)
    dropped = (y == x).flatten(1).all(1)
    kept = (y == x + 1).flatten(1).all(1)
    assert (dropped ^ kept).all()  # each sample is wholly kept or wholly skipped
    frac = dropped.float().mean().item()
    assert abs(frac - p) < 5 * math.sqrt(p * (1 - p) / n)  # 5 sigma ~ 0.016


def test_eval_is_deterministic_expected_value():
    block = _toy_block(0.3)
    nn.init.normal_(block.bn2.weight)  # a real branch now
    block.train()
    block(torch.rand(64, 4, 3, 3))  # give BN some running statistics
    block.eval()
    x = torch.rand(8, 4, 3, 3)
    with torch.no_grad():
        y1, y2 = block(x), block(x)
        branch = block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(x)))))
    assert torch.equal(y1, y2)
    assert torch.allclose(y1, torch.relu(0.7 * branch + x), atol=1e-6)


def test_whole_net_with_stochastic_depth_trains_and_evals():
    torch.manual_seed(0)
    m = create_model("resnet20", num_classes=10, stochastic_depth=0.5)
    x = torch.randn(4, 3, 32, 32)
    m.train()
    m(x).sum().backward()
    m.eval()
    with torch.no_grad():
        assert torch.equal(m(x), m(x))


def test_bad_stochastic_depth_and_plain_combos_are_clear_errors():
    with pytest.raises(ResNetConfigError, match="stochastic_depth"):
        create_model("resnet18", stochastic_depth=1.5)
    with pytest.raises(CnnzooError, match="plain"):
        create_model("plain18", stochastic_depth=0.5)


def test_stochastic_depth_true_is_the_papers_default_p_l():
    # Huang et al. 2016: linear decay to p_L = 0.5. True used to pass as 1.0 = nothing dropped.
    on = survival_probs(meta_model("resnet56", stochastic_depth=True))
    assert on == survival_probs(meta_model("resnet56", stochastic_depth=0.5))
    assert on[-1] == pytest.approx(0.5) and len(set(on)) == 27
    for off in (False, 0, 0.0):
        assert survival_probs(meta_model("resnet56", stochastic_depth=off)) == [1.0] * 27
    assert survival_probs(meta_model("resnet56", stochastic_depth=0.8))[-1] == pytest.approx(0.8)
    assert (last_survival(True), last_survival(False), last_survival(0.25)) == (0.5, 0.0, 0.25)


@pytest.mark.parametrize("bad", [1, 1.0, -0.1, "0.5", "true", None, [0.5]])
def test_stochastic_depth_rejects_values_that_are_not_p_l(bad):
    with pytest.raises(ResNetConfigError) as e:
        create_model("resnet20", stochastic_depth=bad)
    msg = str(e.value)
    assert "stochastic_depth" in msg and "True" in msg and "p_L" in msg and repr(bad) in msg


@pytest.mark.parametrize("name", ["resnet50", "resnet20", "preact_resnet164", "wrn28_10", "wrn"])
def test_stochastic_depth_docs_say_true_means_half(name):
    doc = model_info(name).builder.__doc__
    assert "True" in doc and "0.5" in doc and "off" in doc


def test_whole_net_drops_each_block_at_its_own_rate():
    """Train mode: over many passes, block l's branch is dropped for a 1 - p_l fraction of the
    samples (p_l from survival_probs, the linear decay checked above)."""
    torch.manual_seed(0)
    m = create_model("resnet20", num_classes=10, stochastic_depth=True).train()
    paths = [b.drop_path for b in m.modules() if isinstance(b, BasicBlock)]
    dropped = [0] * len(paths)

    def count(i):
        def hook(_mod, inp, out):
            kept_any = inp[0].flatten(1).abs().sum(1) > 0  # a branch that is not all zero
            dropped[i] += int(((out.flatten(1) == 0).all(1) & kept_any).sum())
        return hook

    for i, dp in enumerate(paths):
        dp.register_forward_hook(count(i))
    passes, batch = 40, 64
    with torch.no_grad():
        for _ in range(passes):
            m(torch.randn(batch, 3, 8, 8))
    n = passes * batch
    probs = survival_probs(m)
    assert len(probs) == len(paths) == 9 and probs[-1] == pytest.approx(0.5)
    for i, (d, p) in enumerate(zip(dropped, probs)):
        sigma = math.sqrt(p * (1 - p) / n)
        assert abs(d / n - (1 - p)) < 5 * sigma + 1e-9, (i, d / n, 1 - p)
    m.eval()
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(m(x), m(x))  # eval: deterministic, every block kept and scaled


# --- slow: real forwards of every network -------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_every_model_real_forward(name):
    info = model_info(name)
    m = create_model(name, num_classes=10).eval()
    with torch.no_grad():
        assert m(torch.randn(1, *info.input_size)).shape == (1, 10)
        if info.small_input:
            small = create_model(name, num_classes=10, in_chans=1, small_input=True).eval()
            assert small(torch.randn(1, 1, 28, 28)).shape == (1, 10)
