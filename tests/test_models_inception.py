"""GoogLeNet, Inception-v3, Inception-v4, Inception-ResNet-v2: sizes, shapes, torchvision
state-dict layout, auxiliary heads and their loss weighting, and the lecture's op counts."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from cnnzoo import AuxOutput, create_model, model_info
from cnnzoo.analysis import check_input
from cnnzoo.errors import CnnzooError, ShapeError
from cnnzoo.models import inception_v4 as inception_v4_mod
from cnnzoo.models.googlenet import STAGES, Inception
from cnnzoo.models.layers import Concat, main_logits
from cnnzoo.train import TrainConfig, train
from cnnzoo.train import trainer as trainer_mod
from cnnzoo.train.trainer import recipe_loss


def n_params(name, **kw):
    with torch.device("meta"):
        model = create_model(name, **kw)
    return sum(p.numel() for p in model.parameters())


def shapes(model):
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


# ------------------------------------------------------------------ published parameter counts
@pytest.mark.parametrize(
    "name, kw, expected",
    [
        ("googlenet", {"aux_logits": False}, 6_624_904),
        ("googlenet", {"aux_logits": True}, 13_004_888),
        ("inception_v3", {"aux_logits": True}, 27_161_264),
        ("inception_v3", {"aux_logits": False}, 23_834_568),
    ],
)
def test_param_counts_match_torchvision(name, kw, expected):
    assert n_params(name, **kw) == expected


# The issue's ~42.68M / ~55.84M, exactly: the same totals as timm's inception_v4 /
# inception_resnet_v2 (ports of the TF-slim release), counted layer by layer from their source.
@pytest.mark.parametrize(
    "name, exact", [("inception_v4", 42_679_816), ("inception_resnet_v2", 55_843_464)]
)
def test_param_counts_v4_irv2_exact(name, exact):
    assert n_params(name) == exact


def test_paper_5x5_swaps_only_the_5x5_kernels():
    # Each module's "5x5" conv grows from 3x3 to 5x5: 16 more weights per (reduce, out) pair.
    extra = sum(16 * cfg[4] * cfg[5] for cfg in STAGES.values())
    assert n_params("googlenet", paper_5x5=True) - n_params("googlenet") == extra
    with torch.device("meta"):
        m = create_model("googlenet", paper_5x5=True)
    assert m.inception4a.branch3[1].conv.kernel_size == (5, 5)


# ------------------------------------------------- torchvision state-dict tables, built by rule
# Transcribed from torchvision/models/googlenet.py and inception.py: each BasicConv2d is
# (in, out, kh, kw) and yields conv.weight + bn.{weight,bias,running_mean,running_var,
# num_batches_tracked}; each Linear is (in, out).
def expand(convs, linears):
    out = {}
    for p, (i, o, kh, kw) in convs.items():
        out[f"{p}.conv.weight"] = (o, i, kh, kw)
        for s in ("weight", "bias", "running_mean", "running_var"):
            out[f"{p}.bn.{s}"] = (o,)
        out[f"{p}.bn.num_batches_tracked"] = ()
    for p, (i, o) in linears.items():
        out[f"{p}.weight"], out[f"{p}.bias"] = (o, i), (o,)
    return out


TV_GOOGLENET = {  # inception_block(in, 1x1, 3x3red, 3x3, 5x5red, 5x5, pool_proj)
    "3a": (192, 64, 96, 128, 16, 32, 32), "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64), "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64), "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128), "5a": (832, 256, 160, 320, 32, 128, 128),
    "5b": (832, 384, 192, 384, 48, 128, 128),
}


def tv_googlenet(aux, nc=1000):
    convs = {"conv1": (3, 64, 7, 7), "conv2": (64, 64, 1, 1), "conv3": (64, 192, 3, 3)}
    for s, (i, c1, r3, c3, r5, c5, pp) in TV_GOOGLENET.items():
        p = f"inception{s}"
        convs |= {
            f"{p}.branch1": (i, c1, 1, 1), f"{p}.branch2.0": (i, r3, 1, 1),
            f"{p}.branch2.1": (r3, c3, 3, 3), f"{p}.branch3.0": (i, r5, 1, 1),
            f"{p}.branch3.1": (r5, c5, 3, 3),  # torchvision's kernel_size=3 "known bug"
            f"{p}.branch4.1": (i, pp, 1, 1),
        }
    linears = {"fc": (1024, nc)}
    if aux:
        for a, i in (("aux1", 512), ("aux2", 528)):
            convs[f"{a}.conv"] = (i, 128, 1, 1)
            linears |= {f"{a}.fc1": (2048, 1024), f"{a}.fc2": (1024, nc)}
    return expand(convs, linears)


def tv_a(i, pf):
    return {"branch1x1": (i, 64, 1, 1), "branch5x5_1": (i, 48, 1, 1),
            "branch5x5_2": (48, 64, 5, 5), "branch3x3dbl_1": (i, 64, 1, 1),
            "branch3x3dbl_2": (64, 96, 3, 3), "branch3x3dbl_3": (96, 96, 3, 3),
            "branch_pool": (i, pf, 1, 1)}


def tv_b(i):
    return {"branch3x3": (i, 384, 3, 3), "branch3x3dbl_1": (i, 64, 1, 1),
            "branch3x3dbl_2": (64, 96, 3, 3), "branch3x3dbl_3": (96, 96, 3, 3)}


def tv_c(i, c7):
    return {"branch1x1": (i, 192, 1, 1), "branch7x7_1": (i, c7, 1, 1),
            "branch7x7_2": (c7, c7, 1, 7), "branch7x7_3": (c7, 192, 7, 1),
            "branch7x7dbl_1": (i, c7, 1, 1), "branch7x7dbl_2": (c7, c7, 7, 1),
            "branch7x7dbl_3": (c7, c7, 1, 7), "branch7x7dbl_4": (c7, c7, 7, 1),
            "branch7x7dbl_5": (c7, 192, 1, 7), "branch_pool": (i, 192, 1, 1)}


def tv_d(i):
    return {"branch3x3_1": (i, 192, 1, 1), "branch3x3_2": (192, 320, 3, 3),
            "branch7x7x3_1": (i, 192, 1, 1), "branch7x7x3_2": (192, 192, 1, 7),
            "branch7x7x3_3": (192, 192, 7, 1), "branch7x7x3_4": (192, 192, 3, 3)}


def tv_e(i):
    return {"branch1x1": (i, 320, 1, 1), "branch3x3_1": (i, 384, 1, 1),
            "branch3x3_2a": (384, 384, 1, 3), "branch3x3_2b": (384, 384, 3, 1),
            "branch3x3dbl_1": (i, 448, 1, 1), "branch3x3dbl_2": (448, 384, 3, 3),
            "branch3x3dbl_3a": (384, 384, 1, 3), "branch3x3dbl_3b": (384, 384, 3, 1),
            "branch_pool": (i, 192, 1, 1)}


def tv_inception_v3(aux, nc=1000):
    convs = {"Conv2d_1a_3x3": (3, 32, 3, 3), "Conv2d_2a_3x3": (32, 32, 3, 3),
             "Conv2d_2b_3x3": (32, 64, 3, 3), "Conv2d_3b_1x1": (64, 80, 1, 1),
             "Conv2d_4a_3x3": (80, 192, 3, 3)}
    blocks = {"Mixed_5b": tv_a(192, 32), "Mixed_5c": tv_a(256, 64), "Mixed_5d": tv_a(288, 64),
              "Mixed_6a": tv_b(288), "Mixed_6b": tv_c(768, 128), "Mixed_6c": tv_c(768, 160),
              "Mixed_6d": tv_c(768, 160), "Mixed_6e": tv_c(768, 192), "Mixed_7a": tv_d(768),
              "Mixed_7b": tv_e(1280), "Mixed_7c": tv_e(2048)}
    for b, table in blocks.items():
        convs |= {f"{b}.{k}": v for k, v in table.items()}
    linears = {"fc": (2048, nc)}
    if aux:
        convs |= {"AuxLogits.conv0": (768, 128, 1, 1), "AuxLogits.conv1": (128, 768, 5, 5)}
        linears["AuxLogits.fc"] = (768, nc)
    return expand(convs, linears)


@pytest.mark.parametrize("aux", [True, False])
@pytest.mark.parametrize(
    "name, table", [("googlenet", tv_googlenet), ("inception_v3", tv_inception_v3)]
)
def test_state_dict_matches_torchvision_and_loads_strict(name, table, aux):
    expected = table(aux)
    with torch.device("meta"):
        meta_model = create_model(name, aux_logits=aux)
    assert shapes(meta_model) == expected
    # A torchvision-shaped checkpoint loads with strict=True.
    model = create_model(name, num_classes=1000, aux_logits=aux)
    fake = {k: torch.full(s, 0.5) if s else torch.tensor(7) for k, s in expected.items()}
    model.load_state_dict(fake, strict=True)
    assert torch.all(model.fc.weight == 0.5)


# ------------------------------------------------------------------------------ forward shapes
ALL = ["googlenet", "inception_v3", "inception_v4", "inception_resnet_v2"]


@pytest.mark.parametrize("name", ALL)
def test_forward_default_size_eval_returns_logits(name):
    size = model_info(name).input_size
    model = create_model(name, num_classes=7).eval()
    with torch.no_grad():
        out = model(torch.randn(1, *size))
    assert isinstance(out, torch.Tensor) and out.shape == (1, 7)


@pytest.mark.parametrize("name, hw", [(n, 28) for n in ALL] + [("googlenet", 32)])
def test_small_input_forward_train_and_eval(name, hw):
    model = create_model(name, num_classes=10, in_chans=1, small_input=True)
    x = torch.randn(2, 1, hw, hw)
    out = model.train()(x)
    logits = out.logits if isinstance(out, AuxOutput) else out
    assert logits.shape == (2, 10)
    if isinstance(out, AuxOutput):
        assert all(a.shape == (2, 10) for a in out.aux)
    with torch.no_grad():
        assert model.eval()(x[:1]).shape == (1, 10)


def test_small_input_info_is_documented():
    for name in ALL:
        info = model_info(name)
        assert info.family == "inception" and info.small_input and "small_input" in info.knobs
    assert model_info("googlenet").top5_err == 6.67
    assert model_info("googlenet").recipe == "googlenet"
    assert model_info("inception_v3").input_size == (3, 299, 299)


# -------------------------------------------------------------------------- auxiliary outputs
def test_train_mode_aux_output_eval_mode_tensor_without_running_aux():
    model = create_model("googlenet", num_classes=10, small_input=True)
    calls = []
    for head in (model.aux1, model.aux2):
        head.register_forward_hook(lambda *a: calls.append(1))
    x = torch.randn(2, 3, 32, 32)
    out = model.train()(x)
    assert isinstance(out, AuxOutput) and len(out.aux) == 2 and len(calls) == 2
    out = model.eval()(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 10) and len(calls) == 2
    plain = create_model("googlenet", num_classes=10, small_input=True, aux_logits=False)
    assert isinstance(plain.train()(x), torch.Tensor)


def test_inception_v3_aux_output_at_299_on_meta():
    with torch.device("meta"):
        model = create_model("inception_v3", num_classes=5).train()
        out = model(torch.empty(2, 3, 299, 299))
    assert isinstance(out, AuxOutput) and len(out.aux) == 1
    assert out.logits.shape == out.aux[0].shape == (2, 5)


def _aux_grads(model, x, y, w):
    torch.manual_seed(0)  # same dropout masks for every weighting
    model.zero_grad()
    out = model(x)
    loss = F.cross_entropy(out.logits, y) + sum(w * F.cross_entropy(a, y) for a in out.aux)
    loss.backward()
    heads = (model.aux1, model.aux2)
    grads = [p.grad.clone() for h in heads for p in h.parameters()]
    return grads, model.fc.weight.grad.clone(), out


def test_aux_loss_weight_reaches_aux_heads_exactly():
    # The paper's training loss: CE(main) + 0.3 * CE(aux1) + 0.3 * CE(aux2); real backward.
    torch.manual_seed(1)
    model = create_model("googlenet", num_classes=10, small_input=True).train()
    x, y = torch.randn(2, 3, 28, 28), torch.randint(0, 10, (2,))
    g03, fc03, out = _aux_grads(model, x, y, 0.3)
    assert all(g.abs().sum() > 0 for g in g03)
    # d(0.3 * CE)/d(bias of the head's last FC) = 0.3 * mean(softmax - one-hot).
    for head, aux in zip((model.aux1, model.aux2), out.aux):
        expected = 0.3 * (aux.softmax(1) - F.one_hot(y, 10)).mean(0)
        assert torch.allclose(head.fc2.bias.grad, expected.detach(), rtol=1e-4, atol=1e-7)
    g06, fc06, _ = _aux_grads(model, x, y, 0.6)
    # Doubling a loss weight is exact in floating point: the aux heads' grads double exactly
    # (bar subnormals, where float32 itself cannot represent the doubled rounding).
    for a, b in zip(g03, g06):
        normal = a.abs() >= torch.finfo(a.dtype).tiny
        assert torch.equal(b[normal], 2 * a[normal])
        assert (b - 2 * a)[~normal].abs().sum() < 1e-37
    # The main classifier sees only the main loss.
    assert torch.equal(fc03, fc06)


# --------------------------------------------- the trainer's loss through a real backward pass
def _trainer_loss(out, y, aux_weight=0.3, label_smoothing=0.0):
    """The trainer's recipe loss as the training loop calls it (it reads these two config
    fields), with the main logits."""
    cfg = SimpleNamespace(aux_weight=aux_weight, label_smoothing=label_smoothing)
    return recipe_loss(cfg)(out, y), main_logits(out)


def _smoothed(y, k, ls):
    return (1 - ls) * F.one_hot(y, k) + ls / k


@pytest.mark.parametrize("ls", [0.0, 0.1])
def test_trainer_loss_googlenet_real_backward(ls):
    torch.manual_seed(0)
    model = create_model("googlenet", num_classes=10, small_input=True).train()
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    out = model(x)
    loss, logits = _trainer_loss(out, y, 0.3, ls)
    assert logits is out.logits
    hand = F.cross_entropy(out.logits, y, label_smoothing=ls) + 0.3 * sum(
        F.cross_entropy(a, y, label_smoothing=ls) for a in out.aux)
    assert torch.allclose(loss, hand, rtol=1e-6)
    loss.backward()
    for head, aux in zip((model.aux1, model.aux2), out.aux):
        # d loss / d(aux head's last bias) = 0.3 * mean(softmax - smoothed target)
        want = 0.3 * (aux.softmax(1) - _smoothed(y, 10, ls)).mean(0)
        assert torch.allclose(head.fc2.bias.grad, want.detach(), rtol=1e-4, atol=1e-7)
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
    want = (out.logits.softmax(1) - _smoothed(y, 10, ls)).mean(0)  # main head: weight 1
    assert torch.allclose(model.fc.bias.grad, want.detach(), rtol=1e-4, atol=1e-7)


def test_trainer_loss_inception_v3_aux_real_backward():
    torch.manual_seed(0)
    model = create_model("inception_v3", num_classes=7, small_input=True).train()
    x, y = torch.randn(2, 3, 32, 32), torch.randint(0, 7, (2,))
    out = model(x)
    assert isinstance(out, AuxOutput) and len(out.aux) == 1
    loss, _ = _trainer_loss(out, y)
    hand = F.cross_entropy(out.logits, y) + 0.3 * F.cross_entropy(out.aux[0], y)
    assert torch.allclose(loss, hand, rtol=1e-6)
    loss.backward()
    want = 0.3 * (out.aux[0].softmax(1) - F.one_hot(y, 7)).mean(0)
    assert torch.allclose(model.AuxLogits.fc.bias.grad, want.detach(), rtol=1e-4, atol=1e-7)
    assert all(p.grad is not None for p in model.AuxLogits.parameters())
    # the trunk below the aux head learns from both heads, the trunk above from the main one
    assert model.Mixed_6e.branch1x1.conv.weight.grad.abs().sum() > 0
    assert model.Mixed_7c.branch1x1.conv.weight.grad.abs().sum() > 0
    # eval: plain logits, which the loss takes as they are
    model.eval()
    with torch.no_grad():
        plain = model(x)
    assert torch.equal(_trainer_loss(plain, y)[0], F.cross_entropy(plain, y))


def test_train_googlenet_uses_aux_loss_weight_0_3(tmp_path, monkeypatch):
    """One real run of cnnzoo.train on tiny synthetic data: the loss the trainer backpropagates
    is CE(main) + 0.3 * (CE(aux1) + CE(aux2)), and its gradient reaches the aux heads."""
    seen = []
    original = trainer_mod.recipe_loss

    def spying_recipe_loss(cfg):
        loss_fn = original(cfg)

        def spy(out, y):
            loss = loss_fn(out, y)
            # d loss / d aux logits, summed over the batch = the aux head's bias gradient
            grads = [g.sum(0) for g in torch.autograd.grad(loss, out.aux, retain_graph=True)]
            seen.append((out, y, cfg.aux_weight, loss.detach(), grads))
            return loss
        return spy

    monkeypatch.setattr(trainer_mod, "recipe_loss", spying_recipe_loss)
    cfg = TrainConfig(model="googlenet", dataset="synthetic", epochs=1, batch_size=16,
                      dataset_kwargs={"num_samples": 40, "size": 32, "channels": 3},
                      out=str(tmp_path / "run"), monitor=False, progress=False, log_every=1)
    res = train(cfg)
    assert res.step == len(seen) == 2  # 36 training images, batches of 16, last one dropped
    for out, y, weight, loss, grads in seen:
        assert weight == 0.3  # the googlenet recipe's aux_weight (paper: 0.3)
        assert isinstance(out, AuxOutput) and len(out.aux) == 2
        hand = F.cross_entropy(out.logits, y) + 0.3 * sum(F.cross_entropy(a, y) for a in out.aux)
        assert torch.allclose(loss, hand.detach(), rtol=1e-5)
        for g, aux in zip(grads, out.aux):
            want = 0.3 * (aux.softmax(1) - F.one_hot(y, 10)).mean(0)
            assert torch.allclose(g, want.detach(), rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------- transform_input
class _Stop(Exception):
    pass


def _stem_input(model, stem, x):
    """What the first conv receives (the forward pass stops there)."""
    seen = []

    def grab(_mod, inp):
        seen.append(inp[0])
        raise _Stop

    getattr(model, stem).register_forward_pre_hook(grab)
    with pytest.raises(_Stop):
        model(x)
    return seen[0]


@pytest.mark.parametrize("name, stem", [("googlenet", "conv1"), ("inception_v3", "Conv2d_1a_3x3")])
def test_transform_input_reproduces_torchvision(name, stem):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 80, 80)
    got = _stem_input(create_model(name, num_classes=5, transform_input=True).eval(), stem, x)
    # torchvision's _transform_input, channel by channel
    want = torch.cat([x[:, 0:1] * (0.229 / 0.5) + (0.485 - 0.5) / 0.5,
                      x[:, 1:2] * (0.224 / 0.5) + (0.456 - 0.5) / 0.5,
                      x[:, 2:3] * (0.225 / 0.5) + (0.406 - 0.5) / 0.5], 1)
    assert torch.equal(got, want)
    # What it means: an ImageNet-normalised pixel p in [0, 1] arrives as 2p - 1.
    p = torch.rand(2, 3, 80, 80)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    got = _stem_input(create_model(name, transform_input=True).eval(), stem, (p - mean) / std)
    assert torch.allclose(got, 2 * p - 1, atol=1e-5)
    # Off by default: the stem sees the input unchanged.
    assert torch.equal(_stem_input(create_model(name).eval(), stem, x), x)
    assert "transform_input=True" in model_info(name).notes
    assert model_info(name).knobs[-1] == "transform_input"
    with pytest.raises(CnnzooError, match="in_chans=1"):
        create_model(name, in_chans=1, transform_input=True)


# ------------------------------------------------------------ the Inception module (lecture 001)
def macs(module, x):
    with FlopCounterMode(display=False) as fc:
        module(x)
    return fc.get_total_flops() // 2  # one multiply-add = 2 flops


def test_naive_vs_reduced_module_channels_and_ops():
    x = torch.randn(1, 256, 28, 28)
    naive = Inception(256, 128, 64, 192, 64, 96, 64, naive=True).eval()
    reduced = Inception(256, 128, 64, 192, 64, 96, 64).eval()
    # Naive: the pool branch passes all 256 input channels -> depth only grows.
    assert naive.out_channels == 128 + 192 + 96 + 256 == naive(x).shape[1] == 672
    assert reduced.out_channels == 128 + 192 + 96 + 64 == reduced(x).shape[1] == 480
    assert naive(x).shape[-2:] == reduced(x).shape[-2:] == (28, 28)
    # Lecture 001: "854M ops for naive version".
    assert round(macs(naive, x) / 1e6) == 854
    # The reduced module's ops are exactly the six terms lecture 001 lists. (Those terms sum
    # to 271M; the slide's printed "Total: 358M" does not equal its own terms.)
    hw = 28 * 28
    terms = [hw * 64 * 256, hw * 64 * 256, hw * 128 * 256, hw * 192 * 9 * 64,
             hw * 96 * 25 * 64, hw * 64 * 256]
    assert macs(reduced, x) == sum(terms)


def test_inception_modules_use_the_shared_concat_block():
    # One DepthConcat for the zoo (layers.Concat): GoogLeNet's module and v4 / IRv2's blocks.
    assert inception_v4_mod.Concat is Concat
    module = Inception(256, 128, 64, 192, 64, 96, 64).eval()
    assert isinstance(module, Concat)
    assert [n for n, _ in module.named_children()] == ["branch1", "branch2", "branch3", "branch4"]
    x = torch.randn(1, 256, 7, 7)
    with torch.no_grad():
        parts = [b(x) for b in (module.branch1, module.branch2, module.branch3, module.branch4)]
        assert torch.equal(module(x), torch.cat(parts, 1))
    with torch.device("meta"):
        v4 = create_model("inception_v4")
    assert isinstance(v4.blocks_a[0], Concat) and isinstance(v4.reduction_b, Concat)


def test_module_kernel5_and_naive_have_no_reductions():
    naive = Inception(256, 128, 64, 192, 64, 96, 64, naive=True)
    assert [type(m).__name__ for m in naive.branch4] == ["MaxPool2d"]
    assert naive.branch3[0].conv.kernel_size == (5, 5)
    assert Inception(256, 128, 64, 192, 64, 96, 64, kernel5=3).branch3[1].conv.kernel_size == (3, 3)


# ------------------------------------------------------------------------------- input errors
@pytest.mark.parametrize(
    "name, kw, train, ok, too_small",
    [
        ("googlenet", {}, False, 15, 14),
        ("googlenet", {}, True, 79, 78),
        ("inception_v3", {}, False, 75, 74),
        ("inception_v4", {}, False, 75, 74),
        ("inception_resnet_v2", {}, False, 75, 74),
    ],
)
def test_min_size_raises_shape_error(name, kw, train, ok, too_small):
    # checked when the model is built for a size (create_model(input_size=) runs this check
    # in train mode, the mode a fresh model is in), not inside forward
    with torch.device("meta"):
        model = create_model(name, num_classes=3, **kw).train(train)
        model(torch.empty(2, 3, ok, ok))
    with pytest.raises(ShapeError, match=f"{too_small}x{too_small} is too small"):
        check_input(model, (3, too_small, too_small))
    if train:
        with pytest.raises(ShapeError, match=f"{too_small}x{too_small} is too small"):
            create_model(name, num_classes=3, input_size=(3, too_small, too_small), **kw)


def test_inception_v3_aux_needs_299_in_train_mode_and_wrong_channels():
    with torch.device("meta"):
        model = create_model("inception_v3").train()
    with pytest.raises(ShapeError, match="299x299"):
        check_input(model, (3, 298, 298))
    with pytest.raises(ShapeError, match="expects 3-channel input, got 1"):
        check_input(model.eval(), (1, 299, 299))
    with pytest.raises(ShapeError, match="299x299"):
        create_model("inception_v3", input_size=(3, 298, 298))


def test_residual_scaling_knob():
    with torch.device("meta"):
        model = create_model("inception_resnet_v2", scales=(0.1, 0.2, 0.3))
    assert model.blocks_a[0].scale == 0.1 and model.blocks_b[0].scale == 0.2
    assert model.blocks_c[0].scale == 0.3 and model.blocks_c[-1].scale == 1.0
    assert isinstance(model.blocks_c[-1].act, nn.Identity)
