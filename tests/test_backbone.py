"""The backbone vocabulary on every registered model: forward_features / forward_head,
get_classifier / reset_classifier, feature_info, the hook-based feature extractor, one
activation module per call site, torch.export; and layers that point one way."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import heavy
import pytest
import torch
import torch.nn as nn

import cnnzoo
from cnnzoo.errors import CnnzooError
from cnnzoo.models import AuxOutput, main_logits
from cnnzoo.models.backbone import Backbone, UnknownLayerError, features

ALL = cnnzoo.list_models()


def small_build(name: str, **kw) -> tuple[nn.Module, tuple[int, int, int]]:
    """The model at its cheapest input: the small stem at 32 px for ImageNet nets."""
    info = cnnzoo.model_info(name)
    c = info.input_size[0]
    if info.small_input:
        kw.setdefault("small_input", True)
        size = (c, 32, 32)
    else:
        size = info.input_size
    torch.manual_seed(0)
    return cnnzoo.create_model(name, **kw), size


@pytest.mark.parametrize("name", heavy.by_name(ALL))
def test_vocabulary(name):
    model, size = small_build(name)
    assert isinstance(model, Backbone)
    model.eval()
    x = torch.randn(2, *size)
    with torch.no_grad():
        logits = model(x)
        feats = model.forward_features(x)
        assert feats.ndim == 4, "forward_features is the last feature map (B, C, H, W)"
        assert torch.allclose(model.forward_head(feats), logits, atol=1e-6, rtol=1e-5,
                              equal_nan=True)  # ResNet-1202 at init overflows in eval mode
        vec = model.forward_head(feats, pre_logits=True)
    assert vec.ndim == 2 and vec.shape[0] == 2
    head = model.get_classifier()
    in_features = head.in_features if isinstance(head, nn.Linear) else head.in_channels
    assert vec.shape[1] == in_features, "pre_logits is what feeds the classifier"

    before = {k: v.clone() for k, v in model.state_dict().items()}
    heads = {model.classifier_name, *model.aux_classifier_names}
    model.reset_classifier(5)
    with torch.no_grad():
        assert model(x).shape == (2, 5)
    after = model.state_dict()
    for k, v in before.items():
        if k.rsplit(".", 1)[0] in heads:
            assert after[k].shape[0] == 5, k
        else:
            assert torch.equal(after[k], v), f"{k} changed by reset_classifier"
    if model.aux_classifier_names:
        model.train()
        out = model(torch.randn(2, *size))
        assert isinstance(out, AuxOutput)
        assert all(a.shape == (2, 5) for a in out.aux)


@pytest.mark.parametrize("name", heavy.by_name(ALL))
def test_feature_info_matches_hooks(name):
    """Channels and reductions that the analysis code measured equal what hooks see."""
    with torch.device("meta"):
        model = cnnzoo.create_model(name)
    info = model.feature_info
    assert [i["module"] for i in info] == list(model.stage_names)
    assert len(info) >= 2, "at least two stages"
    c, h, w = model.default_input_size
    outs = features(model.eval(), model.stage_names)(torch.empty(1, c, h, w, device="meta"))
    prev = 0
    for i in info:
        out = outs[i["module"]]
        assert out.shape[1] == i["num_chs"], i
        red = i["reduction"]
        # valid (unpadded) convs and ceil-mode pools shift the grid by a few pixels only
        assert abs(h / red - out.shape[2]) <= 3, (i, tuple(out.shape))
        assert red >= prev and i["receptive_field"] != "n/a"
        prev = red
    assert info[-1]["num_chs"] == model.forward_features(
        torch.empty(1, c, h, w, device="meta")).shape[1], "the last stage is forward_features"


@pytest.mark.parametrize("name", heavy.by_name(ALL))
def test_one_activation_module_per_call_site(name):
    """No module runs twice in one forward, so hooks (monitor, features) see one call each."""
    model, size = small_build(name)
    for mode in (False, True):
        model.train(mode)
        calls: Counter = Counter()
        handles = [m.register_forward_hook(lambda m, a, o, n=n, c=calls: c.update([n]))
                   for n, m in model.named_modules() if n]
        model(torch.randn(2, *size))
        for h in handles:
            h.remove()
        twice = [n for n, k in calls.items() if k > 1]
        assert not twice, f"called more than once: {twice[:5]}"


EXPORT_SLOW = heavy.GIANTS | {"inception_resnet_v2", "inception_v4", "densenet161", "densenet201",
                      "resnet152", "plain152", "resnext101_32x8d", "resnext101_64x4d",
                      "wide_resnet101_2", "preact_resnet152"}


@pytest.mark.parametrize("name", heavy.by_name(ALL, EXPORT_SLOW))
def test_torch_export_at_default_size(name):
    with torch.device("meta"):
        model = cnnzoo.create_model(name).eval()
    x = torch.empty(1, *model.default_input_size, device="meta")
    prog = torch.export.export(model, (x,))
    out = prog.module()(x)
    assert out.shape == (1, cnnzoo.model_info(name).num_classes)


def test_features_extractor_names_and_errors():
    model, size = small_build("resnet20")
    model.eval()
    x = torch.randn(2, *size)
    got = features(model, ["layer2", "layer3.1.conv2"])(x)
    assert list(got) == ["layer2", "layer3.1.conv2"]
    assert got["layer2"].shape == (2, 32, 16, 16)
    assert got["layer3.1.conv2"].shape == (2, 64, 8, 8)
    # the same tensors as a manual forward
    with torch.no_grad():
        ref = model.layer2(model.layer1(model.relu(model.bn1(model.conv1(x)))))
    assert torch.allclose(got["layer2"], ref)
    with pytest.raises(UnknownLayerError) as e:
        features(model, ["layer9"])
    assert "layer1" in str(e.value) or "layer2" in str(e.value)
    assert isinstance(e.value, CnnzooError)
    with pytest.raises(UnknownLayerError) as e:
        features(model, ["layer3.1.conv9"])
    assert "layer3.1.conv2" in str(e.value) or "layer3.1.conv1" in str(e.value)


def test_features_not_changed_by_later_inplace_relu():
    """bn1's output is captured before the in-place ReLU that follows it rewrites it."""
    model, size = small_build("resnet20")
    model.eval()
    got = features(model, ["bn1"])(torch.randn(2, *size))
    assert (got["bn1"] < 0).any()


@pytest.mark.parametrize("name,knobs", [("resnet20", {"stochastic_depth": True}),
                                        ("fractalnet20", {})])
def test_features_with_random_control_flow(name, knobs):
    model, size = small_build(name, **knobs)
    model.train()
    stage = model.stage_names[1]
    for _ in range(3):
        out = features(model, [stage])(torch.randn(2, *size))[stage]
        assert out.shape[0] == 2 and torch.isfinite(out).all()


def test_aux_layer_absent_in_eval_is_clear():
    model, size = small_build("googlenet")
    model.eval()
    with pytest.raises(CnnzooError, match="did not run"):
        features(model, ["aux1"])(torch.randn(1, *size))


# --- layers point one way -------------------------------------------------------------------

PKG = Path(cnnzoo.__file__).parent
# A package may import the ones on its own rank or below, never above: the zoo at the
# bottom, then what measures it, reads data, owns run folders and draws; then training and
# evaluation; then what is built on them; the CLI on top.
RANK = {"errors": 0, "utils": 0, "models": 1, "analysis": 2, "data": 2, "imaging": 3,
        "runs": 3, "infer": 3, "viz": 4, "train": 5, "evaluate": 6, "export": 6, "bench": 7,
        "ensemble": 7, "transfer": 7, "report": 8, "casestudy": 9, "cli": 10}


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):  # function-level (lazy) imports count too
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def test_layers_point_one_way():
    bad = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG)
        top = rel.parts[0].removesuffix(".py")
        if top not in RANK:
            continue
        for mod in _imports(path):
            parts = mod.split(".")
            if parts[0] != "cnnzoo" or len(parts) < 2:
                continue
            target = parts[1]
            if target in RANK and RANK[target] > RANK[top]:
                bad.append(f"{rel} imports {mod}")
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_models_import_nothing_above_them():
    # the strict form the issue asks for: models see only errors, utils and themselves
    for path in (PKG / "models").glob("*.py"):
        for mod in _imports(path):
            parts = mod.split(".")
            if parts[0] == "cnnzoo":
                assert parts[1] in ("models", "errors", "utils"), f"{path.name}: {mod}"


def test_main_logits_unchanged():
    t = torch.zeros(1, 3)
    assert main_logits(AuxOutput(t, ())) is t and main_logits(t) is t
