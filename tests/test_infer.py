"""The inference path: batch norm folded exactly where that is exact (and reported where
not), the model given left alone, channels-last chosen or forced, inference mode."""

from __future__ import annotations

import copy

import heavy
import pytest
import torch
import torch.nn as nn

import cnnzoo
from cnnzoo.analysis import check_input
from cnnzoo.bench.zoo import small_setting
from cnnzoo.errors import CnnzooError, ShapeError
from cnnzoo.infer import (
    PREACTIVATION,
    fold_batchnorm,
    max_rel_diff,
    optimize_for_inference,
    plan_fold,
)

ALL = cnnzoo.list_models()
# The deepest: building and running them dominates the suite; they run in `make test-all`.
SLOW = heavy.GIANTS | {
        "densenet_bc250", "densenet_bc190", "inception_resnet_v2", "inception_v4",
        "densenet121", "densenet169", "densenet201", "densenet161", "fractalnet40",
        "resnet101", "resnet152", "plain101", "plain152", "preact_resnet101",
        "preact_resnet152", "preact_resnet164", "wide_resnet101_2", "resnext101_1x64d",
        "resnext101_2x40d", "resnext101_4x24d", "resnext101_8x14d", "resnext101_32x4d",
        "resnext101_32x8d", "resnext101_64x4d"}


def randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics and affine parameters: with the defaults (mean 0, var 1,
    gamma 1, beta 0) an eval-mode BN is nearly the identity and folding proves nothing."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
            if m.affine:
                m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.data.copy_((torch.rand(n, generator=g) - 0.5) * 0.4)
    return model


def calibrate_bn(model: nn.Module, size, seed: int = 0) -> nn.Module:
    """Eval mode with random BN affine parameters and real running statistics: gamma, beta
    drawn per channel, then one train-mode pass on random images sets each BN's running
    mean / var to what its input really is. With the defaults (mean 0, var 1, gamma 1,
    beta 0) an eval-mode BN is nearly the identity and folding proves nothing; measured
    statistics also keep untrained deep nets' logits finite."""
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        n = m.num_features
        if m.affine:
            m.weight.data.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
        m.reset_running_stats()
        m.momentum = None  # cumulative average: after one batch, exactly its statistics
    model.train()
    with torch.no_grad():
        model(torch.randn(4, *size, generator=g))
    for m in bns:
        m.momentum = 0.1
    return model.eval()


def small_model(name: str, *, cheap: bool = False) -> tuple[nn.Module, tuple[int, int, int]]:
    """A registered model at its small input (or the cheapest it takes), BN calibrated."""
    knobs, size = small_setting(name)
    torch.manual_seed(0)
    model = cnnzoo.create_model(name, num_classes=10, **knobs)
    if cheap:
        size = cheapest_size(model, size)
    return calibrate_bn(model, size), size


def cheapest_size(model: nn.Module, size) -> tuple[int, int, int]:
    """The smallest of 8, 16 px the model takes (else `size`): folding is per channel, so
    the proof holds at any size, and deep nets run 4-16x faster than at 32 px."""
    for s in (8, 16):
        try:
            check_input(model, (size[0], s, s))
            return (size[0], s, s)
        except ShapeError:
            pass
    return tuple(size)


def snapshot(model: nn.Module):
    return ({k: v.clone() for k, v in model.state_dict().items()},
            [(n, type(m)) for n, m in model.named_modules()], model.training)


def assert_unchanged(model: nn.Module, snap) -> None:
    state, types, training = snap
    now = model.state_dict()
    assert list(now) == list(state)
    assert all(torch.equal(now[k], v) for k, v in state.items())
    assert [(n, type(m)) for n, m in model.named_modules()] == types
    assert model.training == training


def bn_count(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@pytest.mark.parametrize("name", heavy.by_name(ALL, SLOW))
def test_fold_is_exact_over_the_registry(name):
    model, size = small_model(name, cheap=True)
    snap = snapshot(model)
    x = torch.randn(2, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(x)
    fast = optimize_for_inference(model, input_size=size, channels_last=False)
    out = fast(x)
    if max_rel_diff(out, ref) >= 1e-4:
        # Only a net that amplifies float32 rounding this much (plain 110+ layers, untrained)
        # may: eager float32 is then itself that far from exact arithmetic, and the fold must
        # be exact in float64 and no less accurate than eager in float32.
        truth = copy.deepcopy(model).double()
        with torch.no_grad():
            exact = truth(x.double())
        eager_err = max_rel_diff(ref, exact)
        assert eager_err > 2e-5, "float32 eager is accurate here, so the fold must be too"
        assert max_rel_diff(out, exact) < 3 * eager_err
        fast64 = optimize_for_inference(truth, input_size=size, channels_last=False)
        assert max_rel_diff(fast64(x.double()), exact) < 1e-9
    report = fast.info.fold
    # every BN the report calls folded is gone from the copy; the others remain
    assert bn_count(fast.model) == len(report.not_folded) == bn_count(model) - len(report.folded)
    assert_unchanged(model, snap)


def test_calibrated_statistics_are_far_from_the_defaults():
    model, _ = small_model("resnet18")
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert max(m.running_mean.abs().max().item() for m in bns) > 0.5
    assert max((m.running_var - 1).abs().max().item() for m in bns) > 0.5
    assert min(m.weight.min().item() for m in bns) < 0.8 < 1.2 < max(
        m.weight.max().item() for m in bns)


def test_plain_resnet_folds_every_bn():
    model, size = small_model("resnet18")
    report = plan_fold(model, size)
    assert len(report.folded) == bn_count(model) == 20 and not report.not_folded
    assert ("conv1", "bn1") in report.folded and ("layer2.0.downsample.0",
                                                 "layer2.0.downsample.1") in report.folded


def test_preactivation_bns_are_reported_not_folded():
    model, size = small_model("preact_resnet18")
    report = plan_fold(model, size)
    pre = set(report.preactivation)
    # BN -> ReLU -> conv at the start of every block after the first; BN after conv1 folds
    assert "layer1.1.bn1" in pre and "layer4.1.bn1" in pre
    assert ("layer1.0.conv1", "layer1.0.bn2") in report.folded
    assert "cannot be folded" in report.summary()
    why = dict(report.not_folded)
    assert "final_bn" in why and "not of a convolution" in why["final_bn"]


def test_densenet_norm1_is_preactivation_norm2_folds():
    model, size = small_model("densenet_bc100")
    report = plan_fold(model, size)
    layer = "features.denseblock1.denselayer1"
    assert f"{layer}.norm1" in report.preactivation
    assert (f"{layer}.conv1", f"{layer}.norm2") in report.folded
    assert "features.transition1.norm" in report.preactivation
    assert dict(report.not_folded)[f"{layer}.norm1"] == PREACTIVATION


class _Shared(nn.Module):
    """conv output read by BN and by the residual add: folding would change the add."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


class _Twice(nn.Module):
    """One conv called twice, one BN after each call: no single fold is right for both."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn_a = nn.BatchNorm2d(3)
        self.bn_b = nn.BatchNorm2d(3)

    def forward(self, x):
        return self.bn_b(self.conv(self.bn_a(self.conv(x))))


class _NeedsData(nn.Module):
    """A forward that reads a value (.item()): cannot run on meta tensors."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                                  nn.BatchNorm2d(4))

    def forward(self, x):
        return self.body(x) * (2.0 if x.abs().max().item() > 0 else 1.0)


def test_folding_only_where_provably_exact():
    shared = randomise_bn(_Shared()).eval()
    why = dict(plan_fold(shared, (3, 8, 8)).not_folded)
    assert "conv's output is used elsewhere" in why["bn"]
    twice = randomise_bn(_Twice()).eval()
    report = plan_fold(twice, (3, 8, 8))
    assert not report.folded and len(report.not_folded) == 2
    assert all("runs 2 times" in why for _, why in report.not_folded)
    no_stats = nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3, track_running_stats=False))
    assert "batch statistics" in dict(plan_fold(no_stats, (3, 4, 4)).not_folded)["1"]
    after_relu = nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU(), nn.BatchNorm2d(3))
    assert "relu" in dict(plan_fold(after_relu, (3, 4, 4)).not_folded)["2"]
    for model in (shared, twice):  # nothing folded: the path still gives the same outputs
        x = torch.randn(2, 3, 8, 8)
        with torch.no_grad():
            ref = model(x)
        assert max_rel_diff(optimize_for_inference(model, input_size=(3, 8, 8),
                                                   channels_last=False)(x), ref) < 1e-6


def test_forward_that_needs_data_is_planned_on_a_real_copy():
    model = randomise_bn(_NeedsData()).eval()
    snap = snapshot(model)
    net, report = fold_batchnorm(model, (3, 8, 8))
    assert report.folded == [("body.0", "body.1")]
    assert "not of a convolution" in dict(report.not_folded)["body.3"]
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert max_rel_diff(net(x), model(x)) < 1e-5
    assert_unchanged(model, snap)


def test_train_mode_model_is_copied_in_eval_mode_and_left_training():
    model, size = small_model("resnet20")
    model.train()
    snap = snapshot(model)
    fast = optimize_for_inference(model, input_size=size, channels_last=False)
    x = torch.randn(3, *size)
    out = fast(x)
    assert_unchanged(model, snap)
    assert out.is_inference() and not fast.model.training
    fast.train()  # stays an inference model: no dropout, no BN statistics
    assert not fast.model.training and not any(m.training for m in fast.modules())
    model.eval()
    with torch.no_grad():
        assert max_rel_diff(out, model(x)) < 1e-4


def test_channels_last_forced_and_measured():
    model, size = small_model("resnext50_32x4d", cheap=True)  # grouped convs: may lose in CL
    x = torch.randn(2, *size)
    with torch.no_grad():
        ref = model(x)
    forced = optimize_for_inference(model, input_size=size, channels_last=True)
    conv = forced.model.get_submodule("layer1.0.conv2")
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert forced.info.channels_last and forced.info.layout == "asked"
    assert max_rel_diff(forced(x), ref) < 1e-4  # NCHW in, the same logits out
    measured = optimize_for_inference(model, input_size=size, batch_size=2)
    assert measured.info.layout.startswith("measured at batch 2: NCHW ")
    assert max_rel_diff(measured(x), ref) < 1e-4
    text = measured.info.summary()
    assert "folded 53 of 53" in text and "memory format:" in text


def test_defaults_and_errors():
    assert cnnzoo.optimize_for_inference is optimize_for_inference
    model, _ = small_model("lenet5")
    fast = optimize_for_inference(model, channels_last=False)  # create_model's default size
    assert fast.info.fold.summary() == "no batch norm to fold"
    with pytest.raises(CnnzooError, match="input_size"):
        optimize_for_inference(nn.Sequential(nn.Conv2d(1, 1, 1)))
    plain = optimize_for_inference(model, fold_bn=False, channels_last=False)
    assert plain.info.fold is None and "not folded" in plain.info.summary()


@pytest.mark.slow
def test_compiled_path_matches_eager():
    model, size = small_model("lenet5")  # folded BN, then Inductor (resnet20: 45 s of C++ build)
    x = torch.randn(4, *size)
    with torch.no_grad():
        ref = model(x)
    fast = optimize_for_inference(model, input_size=size, channels_last=True, compile=True)
    assert fast.info.compiled
    assert max_rel_diff(fast(x), ref) < 1e-4


def test_an_input_the_model_cannot_take_is_one_error():
    model, _ = small_model("resnet20")
    with pytest.raises(CnnzooError, match=r"input_size \(3, 32\) is not \(C, H, W\)"):
        optimize_for_inference(model, input_size=(3, 32), channels_last=False)
    with pytest.raises(CnnzooError, match="cannot run on input 1x32x32"):
        optimize_for_inference(model, input_size=(1, 32, 32), channels_last=False)
