"""The backbone vocabulary on LeNet, AlexNet/ZFNet, VGG, NiN, GoogLeNet and the Inception nets:
what pre_logits is per family, the stages, the aux heads, the build-time size checks, and
family files that borrow only from the shared layers module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import cnnzoo
from cnnzoo.errors import ShapeError
from cnnzoo.models import layers
from cnnzoo.models.layers import AuxOutput, BasicConv2d, stage_ends


def build(name, **kw):
    torch.manual_seed(0)
    return cnnzoo.create_model(name, num_classes=7, **kw).eval()


def captured(model, layer, x):
    """Output of `layer` in one eval forward."""
    seen = []
    handle = model.get_submodule(layer).register_forward_hook(
        lambda _m, _i, out: seen.append(out.clone()))
    with torch.no_grad():
        logits = model(x)
    handle.remove()
    return seen[0], logits


@pytest.mark.parametrize("name, kw, fc7", [
    ("alexnet", {"small_input": True}, "classifier.5"),
    ("zfnet", {"small_input": True}, "classifier.5"),
    ("vgg11_bn", {"small_input": True}, "classifier.5"),
    ("lenet5_1998", {}, "act6"),
    ("vgg_cs324", {}, "flatten"),
])
def test_pre_logits_is_what_the_last_linear_takes(name, kw, fc7):
    model = build(name, **kw)
    x = torch.randn(2, *model.default_input_size)
    want, logits = captured(model, fc7, x)
    with torch.no_grad():
        vec = model.forward_head(model.forward_features(x), pre_logits=True)
        assert torch.equal(vec, want)
        assert torch.allclose(model.get_classifier()(vec), logits, atol=1e-6)


@pytest.mark.parametrize("name", ["googlenet", "inception_v3", "inception_v4",
                                  "inception_resnet_v2"])
def test_inception_pre_logits_is_the_pooled_map(name):
    model = build(name, small_input=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        feats = model.forward_features(x)
        vec = model.forward_head(feats, pre_logits=True)
        assert torch.allclose(vec, feats.mean((2, 3)), atol=1e-6)
        assert torch.allclose(model.fc(vec), model(x), atol=1e-5)


@pytest.mark.parametrize("name, kw, class_conv", [("nin_cifar", {}, "block3.4"),
                                                  ("nin", {"small_input": True}, "block4.4")])
def test_nin_pre_logits_feeds_the_class_map_conv(name, kw, class_conv):
    model = build(name, **kw)
    assert model.classifier_name == class_conv
    x = torch.randn(2, 3, 32, 32)
    class_maps, logits = captured(model, class_conv, x)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape[1] == model.get_classifier().in_channels
        vec = model.forward_head(feats, pre_logits=True)
        # the 1x1 conv on the averaged map = the averaged class maps (before the last ReLU)
        got = model.get_classifier()(vec[:, :, None, None]).flatten(1)
    assert torch.allclose(got, class_maps.mean((2, 3)), atol=1e-5)
    assert torch.allclose(logits, class_maps.relu().mean((2, 3)), atol=1e-5)


def test_stage_ends_are_the_last_layer_at_each_resolution():
    stack = nn.Sequential(nn.Conv2d(3, 8, 3, 2), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Conv2d(8, 8, 1), nn.AvgPool2d(2))
    assert stage_ends(stack) == ("features.3", "features.5", "features.6")
    # VGG-16: the ReLU before each of the 5 pools, and the last pool (timm's stages + it)
    with torch.device("meta"):
        info = cnnzoo.create_model("vgg16", small_input=True).feature_info
    assert [i["reduction"] for i in info] == [1, 2, 4, 8, 16, 32]
    assert [i["num_chs"] for i in info] == [64, 128, 256, 512, 512, 512]


@pytest.mark.parametrize("name, kw, last", [
    ("googlenet", {"small_input": True}, "inception5b"),
    ("inception_v3", {"small_input": True}, "Mixed_7c"),
    ("inception_resnet_v2", {"small_input": True}, "conv_head"),
    ("lenet5", {}, "s4"), ("alexnet", {}, "features.12"), ("nin_cifar", {}, "block3.3"),
])
def test_last_stage_is_forward_features(name, kw, last):
    model = build(name, **kw)
    assert model.stage_names[-1] == last
    x = torch.randn(1, *model.default_input_size)
    got, _ = captured(model, last, x)
    with torch.no_grad():
        assert torch.equal(model.forward_features(x), got)


@pytest.mark.parametrize("name, heads", [("googlenet", ("aux1", "aux2")),
                                         ("inception_v3", ("AuxLogits",))])
def test_aux_heads_reset_and_switched_off(name, heads):
    model = build(name, small_input=True)
    assert model.aux_classifier_names == tuple(f"{h}.fc2" if name == "googlenet" else f"{h}.fc"
                                               for h in heads)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.reset_classifier(4)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {f"{n}.{p}" for n in (model.classifier_name, *model.aux_classifier_names)
                       for p in ("weight", "bias")}
    out = model.train()(torch.randn(2, 3, 32, 32))
    assert isinstance(out, AuxOutput) and [a.shape for a in out.aux] == [(2, 4)] * len(heads)
    plain = build(name, small_input=True, aux_logits=False)
    assert plain.aux_classifier_names == ()
    plain.reset_classifier(4)
    assert plain.train()(torch.randn(2, 3, 32, 32)).shape == (2, 4)


def test_size_limits_are_checked_at_build_time_with_their_numbers():
    # GoogLeNet: the aux heads need 79x79 in train mode (the mode create_model returns) ...
    with pytest.raises(ShapeError, match=r"input 78x78 is too small; it needs at least 79x79 "
                       r"in train mode.*aux_logits=False"):
        cnnzoo.create_model("googlenet", input_size=(3, 78, 78))
    cnnzoo.create_model("googlenet", aux_logits=False, input_size=(3, 78, 78))
    # ... and the forward itself no longer checks: a meta eval forward at 15x15 runs
    with torch.device("meta"):
        model = cnnzoo.create_model("googlenet").eval()
        assert model(torch.empty(1, 3, 15, 15)).shape == (1, 1000)
    with pytest.raises(ShapeError, match="LeNet-5 takes inputs up to 32x32.*got 33x40"):
        cnnzoo.create_model("lenet5", input_size=(1, 33, 40))
    with pytest.raises(ShapeError, match="vgg_cs324: expects 3-channel input, got 1"):
        cnnzoo.create_model("vgg_cs324", input_size=(1, 32, 32))


def test_inception_registration_order_and_files():
    assert cnnzoo.list_models(family="inception") == ["googlenet", "inception_v3",
                                                      "inception_v4", "inception_resnet_v2"]
    from cnnzoo.models import googlenet, inception_v3, inception_v4

    # one paper per file
    assert cnnzoo.model_info("inception_v3").builder.__module__ == inception_v3.__name__
    assert {cnnzoo.model_info(n).builder.__module__ for n in
            ("inception_v4", "inception_resnet_v2")} == {inception_v4.__name__}
    for mod in (googlenet, inception_v3, inception_v4):
        assert mod.BasicConv2d is BasicConv2d  # the shared conv, not a family's own


MODELS = Path(layers.__file__).parent


def test_family_files_import_no_other_family_file():
    # a family file is one that registers models
    families = {cnnzoo.model_info(n).builder.__module__.rsplit(".", 1)[1]
                for n in cnnzoo.list_models()}
    assert {"googlenet", "inception_v3", "inception_v4"} <= families
    for family in families:
        tree = ast.parse((MODELS / f"{family}.py").read_text())
        for node in ast.walk(tree):
            mods = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                    [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            for mod in mods:
                parts = mod.split(".")
                if parts[:2] == ["cnnzoo", "models"] and len(parts) > 2:
                    assert parts[2] not in families, f"{family}.py imports {mod}"
