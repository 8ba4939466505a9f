"""load_torchvision_weights: torchvision's published checkpoints into cnnzoo's networks, with
torchvision's own load-time fix-ups, safe reading, and errors that name the file and keys."""

from __future__ import annotations

import os
import re

import pytest
import torch
import torch.nn as nn
from safetensors.torch import save_file

from cnnzoo.errors import CheckpointError, CnnzooError
from cnnzoo.models import create_model, load_torchvision_weights
from cnnzoo.models.pretrained import classifier_keys, rename_densenet_keys


def to_old_densenet_keys(sd: dict) -> dict:
    """How torchvision's densenet*.pth files name the dense layers (pre-PyTorch-0.4 names
    `norm.1`, `conv.1`, ...), and without num_batches_tracked, which they predate."""
    old = {}
    for k, v in sd.items():
        if k.endswith("num_batches_tracked"):
            continue
        old[re.sub(r"(denselayer\d+\.)(norm|relu|conv)([12])\.", r"\1\2.\3.", k)] = v
    return old


def same_tensors(a: dict, b: dict, skip=()) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a if not k.endswith(tuple(skip)))


@pytest.fixture(scope="module")
def densenet121_file(tmp_path_factory):
    """A densenet121 checkpoint laid out like densenet121-a639ec97.pth (old keys, legacy
    torch.save format), with random weights; and the state dict it was made from."""
    torch.manual_seed(0)
    src = create_model("densenet121")
    with torch.no_grad():  # make running stats differ from a fresh model's
        for m in src.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    sd = src.state_dict()
    path = tmp_path_factory.mktemp("ckpt") / "densenet121-a639ec97.pth"
    torch.save(to_old_densenet_keys(sd), path, _use_new_zipfile_serialization=False)
    return path, sd


def test_old_style_densenet_checkpoint_loads_strict(densenet121_file):
    path, sd = densenet121_file
    raw = torch.load(path, weights_only=True)
    assert "features.denseblock1.denselayer1.norm.1.weight" in raw  # really the old names
    assert "features.denseblock1.denselayer1.norm1.weight" not in raw
    with pytest.raises(RuntimeError, match="Unexpected key"):  # plain loading cannot take it
        create_model("densenet121").load_state_dict(raw)

    model = load_torchvision_weights("densenet121", path)
    assert model.model_name == "densenet121"
    assert same_tensors(sd, model.state_dict(), skip=("num_batches_tracked",))
    model2 = load_torchvision_weights(create_model("densenet121"), str(path))  # a str path
    assert same_tensors(sd, model2.state_dict(), skip=("num_batches_tracked",))


def test_rename_follows_torchvisions_pattern():
    sd = {"features.denseblock2.denselayer11.norm.2.running_var": 1,
          "features.denseblock2.denselayer11.conv.1.weight": 2,
          "features.transition1.norm.weight": 3,  # no layer number: untouched
          "features.denseblock1.denselayer1.norm.1.num_batches_tracked": 4}  # not in the pattern
    assert rename_densenet_keys(sd) == {
        "features.denseblock2.denselayer11.norm2.running_var": 1,
        "features.denseblock2.denselayer11.conv1.weight": 2,
        "features.transition1.norm.weight": 3,
        "features.denseblock1.denselayer1.norm.1.num_batches_tracked": 4}


def test_skip_classifier_for_a_different_class_count(densenet121_file):
    path, sd = densenet121_file
    with pytest.raises(CheckpointError) as e:
        load_torchvision_weights("densenet121", path, num_classes=10)
    msg = str(e.value)
    assert msg.startswith(f"{path}: does not fit densenet121")
    assert "classifier.weight [1000, 1024] in the file, [10, 1024] in the model" in msg
    assert "skip_classifier=True" in msg

    torch.manual_seed(1)
    fresh = create_model("densenet121", num_classes=10)
    head = {k: v.clone() for k, v in fresh.state_dict().items() if k.startswith("classifier")}
    model = load_torchvision_weights(fresh, path, skip_classifier=True)
    got = model.state_dict()
    assert all(torch.equal(got[k], head[k]) for k in head)  # the new head is kept
    assert same_tensors({k: v for k, v in sd.items() if not k.startswith("classifier")}, got,
                        skip=("num_batches_tracked",))
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def failed_load(sd: dict, path) -> str:
    """Save `sd`, load it into a fresh resnet18: the CheckpointError's message, after checking
    that the model was left untouched."""
    torch.save(sd, path)
    model = create_model("resnet18")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as e:
        load_torchvision_weights(model, path)
    assert same_tensors(before, model.state_dict())  # nothing was loaded
    return str(e.value)


def test_hostile_pickle_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "was_run"

    class Payload:
        def __reduce__(self):  # unpickling this would create `marker`
            return (os.mkdir, (str(marker),))

    path = tmp_path / "resnet18.pth"
    sd = dict(create_model("resnet18").state_dict())
    sd["fc.bias"] = Payload()
    msg = failed_load(sd, path)
    assert msg.startswith(f"{path}: refused") and "could run code" in msg and "mkdir" in msg
    assert not marker.exists()


def test_missing_and_unexpected_keys_are_named_and_nothing_is_loaded(tmp_path):
    torch.manual_seed(0)
    sd = dict(create_model("resnet18").state_dict())
    del sd["layer2.0.conv1.weight"]
    sd["layer5.0.conv1.weight"] = torch.zeros(1)
    path = tmp_path / "resnet18.pth"
    msg = failed_load(sd, path)
    assert msg.startswith(f"{path}: does not fit resnet18")
    assert "missing keys (1): layer2.0.conv1.weight" in msg
    assert "unexpected keys (1): layer5.0.conv1.weight" in msg
    # strict=False takes what fits and leaves the rest
    model = create_model("resnet18")
    kept = model.layer2[0].conv1.weight.clone()
    load_torchvision_weights(model, path, strict=False)
    assert torch.equal(model.layer1[0].conv1.weight, sd["layer1.0.conv1.weight"])
    assert torch.equal(model.layer2[0].conv1.weight, kept)


def test_a_small_input_stem_is_a_shape_mismatch(tmp_path):
    path = tmp_path / "resnet18.safetensors"
    save_file(dict(create_model("resnet18").state_dict()), str(path))
    with pytest.raises(CheckpointError, match=r"conv1\.weight \[64, 3, 7, 7\] in the file, "
                                              r"\[64, 3, 3, 3\] in the model"):
        load_torchvision_weights("resnet18", path, small_input=True)


def test_safetensors_and_in_memory_state_dicts(tmp_path):
    torch.manual_seed(0)
    sd = dict(create_model("squeezenet1_1").state_dict())
    path = tmp_path / "squeezenet1_1.safetensors"
    save_file(sd, str(path))
    assert same_tensors(sd, load_torchvision_weights("squeezenet1_1", path).state_dict())
    assert same_tensors(sd, load_torchvision_weights("squeezenet1_1", sd).state_dict())
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match="bad.safetensors: cannot read as safetensors"):
        load_torchvision_weights("squeezenet1_1", tmp_path / "bad.safetensors")


@pytest.mark.parametrize("content, words", [
    (None, "no such file"),
    (b"not a checkpoint", "cannot read as a torch.save file"),
    (b"", "cannot read as a torch.save file"),
    ([1, 2, 3], "holds a list, not a state dict"),
    ({"fc.weight": torch.zeros(1), "epoch": 3}, "not a plain state dict"),
])
def test_unreadable_files_name_the_file(tmp_path, content, words):
    path = tmp_path / "w.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(CheckpointError) as e:
        load_torchvision_weights("alexnet", path)
    assert str(e.value).startswith(str(path)) and words in str(e.value)


def test_googlenet_by_name_takes_tf_scaling_and_drops_unbuilt_aux_heads():
    torch.manual_seed(0)
    sd = dict(create_model("googlenet").state_dict())  # torchvision's file holds aux heads
    assert any(k.startswith("aux1.") for k in sd)
    model = load_torchvision_weights("googlenet", sd, aux_logits=False)
    assert model.transform_input and model.aux1 is None  # as torchvision's builder does
    assert torch.equal(model.fc.weight, sd["fc.weight"])
    own = load_torchvision_weights("googlenet", sd, transform_input=False)
    assert not own.transform_input
    v3 = load_torchvision_weights("inception_v3", dict(create_model("inception_v3",
                                                                    aux_logits=True)
                                                       .state_dict()), aux_logits=False)
    assert v3.AuxLogits is None and v3.transform_input


def test_classifier_keys_per_family():
    with torch.device("meta"):
        assert classifier_keys(create_model("vgg16")) == {"classifier.6.weight",
                                                          "classifier.6.bias"}
        assert classifier_keys(create_model("resnet50")) == {"fc.weight", "fc.bias"}
        assert classifier_keys(create_model("squeezenet1_0")) == {"classifier.1.weight",
                                                                  "classifier.1.bias"}
        assert len(classifier_keys(create_model("googlenet"))) == 6  # fc, aux1.fc2, aux2.fc2
        with pytest.raises(CnnzooError, match="no torchvision counterpart"):
            classifier_keys(create_model("inception_v4"))
    with pytest.raises(CnnzooError, match="only apply when the model is given by name"):
        load_torchvision_weights(create_model("lenet5"), {}, num_classes=3)
