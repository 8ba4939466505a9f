"""The registry (create_model, list_models, model_info) and `cnnzoo models` / `cnnzoo info`."""

from __future__ import annotations

import json

import heavy
import pytest
import torch

from cnnzoo.cli import main
from cnnzoo.cli.models import format_count
from cnnzoo.models import UnknownModelError, create_model, list_models, model_info
from cnnzoo.train.recipes import RECIPES

VGGS = ["vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"]


def test_list_models_pattern_and_family():
    assert list_models("vgg*") == [*VGGS, "vgg_cs324"]
    assert list_models("vgg1?") == ["vgg11", "vgg13", "vgg16", "vgg19"]
    assert list_models(family="lenet") == ["lenet5_1998", "lenet5"]
    assert list_models("*net*", family="alexnet") == ["alexnet", "alexnet_paper", "zfnet"]
    assert list_models("alex*") == ["alexnet", "alexnet_paper"]
    assert list_models("no_such_model*") == []
    everything = list_models()
    assert {"lenet5", "alexnet", "zfnet", "vgg16", "nin", "nin_cifar"} <= set(everything)
    assert len(everything) == len(set(everything))


def test_model_info_carries_the_papers_metadata():
    info = model_info("vgg16")
    assert info.family == "vgg" and info.year == 2014 and "Simonyan" in info.paper
    assert info.top5_err == 7.32 and info.top1_err is None
    assert info.input_size == (3, 224, 224)
    assert info.knobs == ["small_input", "dropout"]
    assert "512" in info.small_input
    assert model_info("alexnet_paper").top5_err == 16.4
    assert model_info("alexnet_paper").input_size == (3, 227, 227)
    assert model_info("zfnet").top5_err == 11.7
    assert model_info("lenet5").small_input == ""  # natively small
    assert model_info("lenet5_1998").knobs == ["c3_table", "act"]
    d = model_info("alexnet_paper").as_dict()
    assert json.loads(json.dumps(d))["input_size"] == [3, 227, 227]
    assert "groups" in model_info("alexnet_paper").knobs


def test_reference_accuracies_are_single_crop_with_a_source():
    # torchvision's acc@1 of its IMAGENET1K_V1 weights, and the Inception-v4 paper's Table 2
    assert model_info("alexnet").ref_top1_acc == 56.522
    assert model_info("vgg16_bn").ref_top1_acc == 73.36
    assert model_info("resnet50").ref_top1_acc == 76.13
    assert model_info("densenet121").ref_top1_acc == 74.434
    assert model_info("squeezenet1_1").ref_top1_acc == 58.178
    assert model_info("inception_v3").ref_top1_acc == 77.294
    assert model_info("inception_v4").ref_top1_acc == 80.0
    assert model_info("inception_resnet_v2").ref_top1_acc == 80.1
    assert "IMAGENET1K_V1" in model_info("googlenet").ref_source
    assert "Table 2" in model_info("inception_v4").ref_source
    # the lectures' (competition) numbers are kept as they were
    assert model_info("vgg16").top5_err == 7.32 and model_info("alexnet").top5_err == 16.4
    assert model_info("resnet50").top1_err == 23.9
    # no trustworthy single-crop figure: left empty
    assert model_info("densenet264").ref_top1_acc == 77.85  # no torchvision weights: paper
    assert "Table 3" in model_info("densenet264").ref_source
    for name in ("alexnet_paper", "zfnet", "nin", "plain34", "lenet5"):
        assert model_info(name).ref_top1_acc is None and model_info(name).ref_source == ""
    with_ref = [n for n in list_models() if model_info(n).ref_top1_acc is not None]
    assert len(with_ref) >= 30
    for name in with_ref:
        info = model_info(name)
        assert 50 < info.ref_top1_acc < 90 and info.ref_source, name
        assert info.input_size[1] >= 224, name  # ImageNet models only
    d = model_info("resnet18").as_dict()
    assert d["ref_top1_acc"] == 69.758 and "ResNet18" in d["ref_source"]


def _meta_outputs(name: str, shapes, **kw) -> list[tuple[int, ...]]:
    """Output shapes of one eval-mode build (on meta tensors, nothing allocated) for each
    input shape; the channel count of the shapes is the model's in_chans."""
    with torch.device("meta"):
        model = create_model(name, num_classes=10, in_chans=shapes[0][1], **kw).eval()
        with torch.no_grad():
            return [tuple(model(torch.empty(shape)).shape) for shape in shapes]


@pytest.mark.parametrize("name", heavy.by_name(list_models()))
def test_every_model_builds_and_runs_on_default_and_small_input(name):
    """Every registered network: its default input, then 28 and 32 pixels with one channel
    (through `small_input=True` where the stem needs it)."""
    info = model_info(name)
    assert _meta_outputs(name, [(1, *info.input_size)]) == [(1, 10)]
    kw = {"small_input": True} if "small_input" in info.knobs else {}
    assert _meta_outputs(name, [(2, 1, 28, 28), (2, 1, 32, 32)], **kw) == [(2, 10)] * 2


@pytest.mark.parametrize("name", list_models())
def test_every_model_documents_its_small_input_form_and_a_known_recipe(name):
    info = model_info(name)
    if "small_input" in info.knobs:  # an ImageNet stem with a documented 28/32-pixel variant
        assert info.small_input and info.input_size[1] >= 224
    else:  # natively small: no special stem, and nothing to document
        assert info.small_input == "" and info.input_size[1] <= 32
    assert info.recipe in RECIPES  # recipe_for would silently fall back to "default"


def test_generic_wrn_lists_beside_its_fixed_settings():
    resnets = list_models(family="resnet")
    assert resnets[0] == "resnet18"
    assert resnets[-4:] == ["wrn", "wrn16_8", "wrn28_10", "wrn40_4"]


def test_register_model_refuses_a_reference_without_its_source():
    from cnnzoo.models.registry import _REGISTRY, register_model

    def build(num_classes=10):
        return torch.nn.Linear(1, num_classes)

    for bad in (dict(ref_top1_acc=75.0), dict(ref_source="somewhere"),
                dict(ref_top1_acc=175.0, ref_source="x")):
        with pytest.raises(ValueError, match="ref_"):
            register_model("test", "no paper", 2000, name="_no_such_model", **bad)(build)
    assert "_no_such_model" not in _REGISTRY


def test_create_model_applies_classes_channels_and_knobs():
    m = create_model("lenet5", num_classes=7, in_chans=3)
    assert m.model_name == "lenet5"
    assert m.c1.in_channels == 3 and m.output.out_features == 7
    with torch.device("meta"):
        m = create_model("alexnet_paper", num_classes=5, groups=2)
    assert m.classifier[-1].out_features == 5 and m.features[4].groups == 2


def test_unknown_model_suggests_the_closest_name():
    with pytest.raises(UnknownModelError) as e:
        create_model("vgg61")
    msg = str(e.value)
    assert "unknown model 'vgg61'" in msg and "did you mean" in msg and "vgg16" in msg
    with pytest.raises(UnknownModelError, match="lenet5"):
        model_info("lenet-5")


def test_unknown_knob_names_the_accepted_ones():
    with pytest.raises(TypeError) as e:
        create_model("vgg16", depth=16)
    assert "depth" in str(e.value) and "small_input, dropout" in str(e.value)
    with pytest.raises(TypeError, match="none"):
        create_model("vgg_cs324", small_input=True)  # natively small: no knobs


def test_format_count():
    assert format_count(138_357_544) == "138.4M"
    assert format_count(61_706) == "61.7K"
    assert format_count(1_500_000_000) == "1.5B"
    assert format_count(850) == "850"


def test_cli_models_table(capsys):
    assert main(["models", "vgg*"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["name", "family", "year", "params"]
    rows = {line.split()[0]: line.split() for line in out[1:]}
    assert list(rows) == [*VGGS, "vgg_cs324"]
    assert rows["vgg16"][1:6] == ["vgg", "2014", "138.4M", "3x224x224", "-"]
    assert rows["vgg16"][6] == "7.32"
    assert rows["vgg19"][3] == "143.7M"
    assert rows["vgg_cs324"][4] == "3x32x32"


def test_cli_models_family_json_and_substring(capsys):
    assert main(["models", "--family", "alexnet", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert list(rows) == ["alexnet", "alexnet_paper", "zfnet"]
    assert rows["alexnet"]["params"] == 61_100_840
    assert rows["alexnet_paper"]["params"] == 62_378_344
    assert rows["alexnet_paper"]["knobs"] == {"groups": 1, "small_input": False, "dropout": 0.5}
    # a bare word matches as a substring; LeNet is counted at its own 10 classes, 1 channel
    assert main(["models", "lenet5_19", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["params"] == 156 + 12 + 1516 + 32 + 48120 + 10164 + 850


def test_cli_models_no_match(capsys):
    assert main(["models", "zz*"]) == 1
    assert "no models match 'zz*'" in capsys.readouterr().err


def test_cli_info(capsys):
    assert main(["info", "alexnet_paper"]) == 0
    out = capsys.readouterr().out
    assert "62,378,344" in out and "groups=1" in out and "small_input=False" in out
    assert "Krizhevsky" in out and "3x227x227" in out and "16.4" in out


def test_cli_info_unknown_model_exits_2(capsys):
    assert main(["info", "vgg61"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnzoo info: error: unknown model 'vgg61'") and "vgg16" in err


def test_info_prints_the_resolved_training_recipes(capsys):
    assert main(["info", "resnet20"]) == 0
    out = capsys.readouterr().out
    small = next(x for x in out.splitlines() if x.startswith("train, 28-64 px data:"))
    big = next(x for x in out.splitlines() if x.startswith("train, larger images:"))
    assert "optimizer='sgd'" in small and "lr=0.1" in small and "milestones=[15, 23]" in small
    assert "epochs=30" in small and "epochs=164" in big
    assert "step_size" not in small and "patience" not in small  # unused by a step schedule
    assert main(["info", "lenet5"]) == 0
    assert "momentum" not in capsys.readouterr().out.split("train, 28-64")[1]  # AdamW
