"""Published torchvision ImageNet weights into cnnzoo's networks (the transfer-learning entry).

    model = load_torchvision_weights("densenet121", "densenet121-a639ec97.pth")
    model = load_torchvision_weights("resnet50", "resnet50-0676ba61.pth", num_classes=10,
                                     skip_classifier=True)   # fine-tune on 10 classes

The networks with torchvision's module names (alexnet, vgg*, googlenet, inception_v3,
resnet*, resnext*, wide_resnet*, densenet*, squeezenet*) take its checkpoints as they are,
except for what torchvision itself fixes up when it loads them:

- DenseNet checkpoints keep the pre-0.4 key names `denselayerN.norm.1`, `conv.1`, `norm.2`,
  `conv.2`, ...; they are renamed to `norm1`, `conv1`, ... with torchvision's pattern.
- GoogLeNet / Inception-v3 checkpoints hold the auxiliary heads; a model built with
  `aux_logits=False` drops them. Their weights were ported from TensorFlow and expect inputs
  scaled to [-1, 1], so a model built here by name gets `transform_input=True` unless told
  otherwise (torchvision's builders do the same).

Files are read with `torch.load(weights_only=True)` (a pickle that holds anything but tensors
and plain containers is refused, never executed) or as safetensors. Anything that does not
fit raises CheckpointError naming the file and the missing, unexpected or mis-shaped keys;
the model is only modified once everything fits.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn as nn

from cnnzoo.errors import CheckpointError, CnnzooError
from cnnzoo.models.alexnet import AlexNet
from cnnzoo.models.densenet import DenseNet
from cnnzoo.models.googlenet import GoogLeNet
from cnnzoo.models.inception_v3 import Inception3
from cnnzoo.models.registry import create_model
from cnnzoo.models.resnet import ResNet
from cnnzoo.models.squeezenet import SqueezeNet
from cnnzoo.models.vgg import VGG

# The network classes laid out as torchvision's, so its checkpoints load as they are.
TORCHVISION_LAYOUT = (AlexNet, VGG, GoogLeNet, Inception3, ResNet, DenseNet, SqueezeNet)
# torchvision's densenet._load_state_dict pattern for the old `norm.1`-style keys.
_DENSENET_OLD_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)
_TF_PORTED = ("googlenet", "inception_v3")  # need transform_input=True
_SHOW = 5  # keys listed per kind of problem in an error message


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a .pth/.pt (torch.save) or .safetensors file, or CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (OSError, SafetensorError) as e:
            raise CheckpointError(f"{path}: cannot read as safetensors ({e})") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # The weights-only unpickler names the first thing it refuses. A GLOBAL is a class or
        # function the pickle would import and call: code. Anything else is a damaged file.
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        why = next((ln for ln in lines if "GLOBAL" in ln), None)
        if why is None:
            detail = next((ln for ln in lines if ln.startswith("Unsupported")),
                          lines[-1] if lines else "damaged")
            raise CheckpointError(f"{path}: cannot read as a torch.save file "
                                  f"({detail[:200]})") from None
        raise CheckpointError(
            f"{path}: refused: the pickle holds more than tensors and plain containers, so "
            f"loading it could run code ({why[:200]})") from None
    except Exception as e:  # a damaged file fails in many different ways inside torch.load
        raise CheckpointError(f"{path}: cannot read as a torch.save file "
                              f"({type(e).__name__}: {str(e).strip()[:200]})") from None
    return _check_tensors(obj, str(path))


def _check_tensors(obj, source: str) -> dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{source}: holds a {type(obj).__name__}, not a state dict "
                              "(a mapping of parameter names to tensors)")
    bad = [k for k, v in obj.items() if not (isinstance(k, str) and torch.is_tensor(v))]
    if bad:
        raise CheckpointError(f"{source}: not a plain state dict: {len(bad)} entries are not "
                              f"name -> tensor (e.g. {bad[0]!r})")
    return dict(obj)


def rename_densenet_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`...denselayer3.norm.1.weight` -> `...denselayer3.norm1.weight` (others unchanged)."""
    out = {}
    for key, value in state_dict.items():
        m = _DENSENET_OLD_KEY.match(key)
        out[m.group(1) + m.group(2) if m else key] = value
    return out


def classifier_keys(model: nn.Module, required: bool = True) -> set[str]:
    """State-dict keys of the model's class-score layers (`get_classifier()` and the aux
    heads' last layers); for a network without a torchvision counterpart an error, or
    nothing if not `required`."""
    if not isinstance(model, TORCHVISION_LAYOUT):
        if not required:
            return set()
        raise CnnzooError(f"{type(model).__name__} has no torchvision counterpart, so there "
                          "is no published classifier to skip")
    prefixes = tuple(n + "." for n in (model.classifier_name, *model.aux_classifier_names))
    return {k for k in model.state_dict() if k.startswith(prefixes)}


def _adapt(model: nn.Module, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision's own load-time fix-ups: old DenseNet names, aux heads not built."""
    if isinstance(model, DenseNet):
        sd = rename_densenet_keys(sd)
    absent = ()
    if isinstance(model, GoogLeNet) and model.aux1 is None:
        absent = ("aux1.", "aux2.")
    if isinstance(model, Inception3) and model.AuxLogits is None:
        absent = ("AuxLogits.",)
    return {k: v for k, v in sd.items() if not k.startswith(absent)} if absent else sd


def _listed(keys, fmt=str) -> str:
    keys = sorted(keys)
    more = f" and {len(keys) - _SHOW} more" if len(keys) > _SHOW else ""
    return ", ".join(fmt(k) for k in keys[:_SHOW]) + more


def load_torchvision_weights(
    model_or_name: nn.Module | str,
    path_or_state_dict: str | os.PathLike | Mapping[str, torch.Tensor],
    strict: bool = True,
    *,
    skip_classifier: bool = False,
    **model_kwargs,
) -> nn.Module:
    """Load torchvision's published weights into a cnnzoo model; returns the model.

    model_or_name: a model, or a registered name to build (with `model_kwargs`, e.g.
        num_classes=10; googlenet / inception_v3 get transform_input=True unless given).
    path_or_state_dict: a .pth/.pt file (read with torch.load(weights_only=True)), a
        .safetensors file, or a state dict already in memory.
    strict: every key of the model and of the checkpoint must match (the default). With
        strict=False missing and unexpected keys are ignored; mis-shaped ones never are.
    skip_classifier: keep the model's own class-score layer(s) (`classifier_keys`) and load
        everything else: the way to start from ImageNet weights with num_classes != 1000.

    Raises CheckpointError, naming the file and the keys, when the weights do not fit.
    """
    if isinstance(model_or_name, str):
        if model_or_name in _TF_PORTED:
            model_kwargs.setdefault("transform_input", True)
        model = create_model(model_or_name, **model_kwargs)
    elif model_kwargs:
        raise CnnzooError(f"load_torchvision_weights: {', '.join(model_kwargs)} only apply "
                          "when the model is given by name")
    else:
        model = model_or_name
    if isinstance(path_or_state_dict, Mapping):
        source = "the state dict"
        sd = _check_tensors(path_or_state_dict, source)
    else:
        source = str(path_or_state_dict)
        sd = read_state_dict(path_or_state_dict)
    sd = _adapt(model, sd)

    own = model.state_dict()
    skipped = classifier_keys(model) if skip_classifier else set()
    sd = {k: v for k, v in sd.items() if k not in skipped}
    # Old checkpoints predate BatchNorm's num_batches_tracked; load_state_dict sets it to 0.
    missing = {k for k in own.keys() - sd.keys() - skipped
               if not k.endswith(".num_batches_tracked")}
    unexpected = sd.keys() - own.keys()
    mismatched = {k for k in sd.keys() & own.keys() if sd[k].shape != own[k].shape}
    problems = []
    if mismatched:
        problems.append("shape mismatch: " + _listed(
            mismatched, lambda k: f"{k} {list(sd[k].shape)} in the file, "
                                  f"{list(own[k].shape)} in the model"))
        if mismatched & classifier_keys(model, required=False):
            problems.append("for a different number of classes pass skip_classifier=True")
    if strict and missing:
        problems.append(f"missing keys ({len(missing)}): {_listed(missing)}")
    if strict and unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {_listed(unexpected)}")
    if problems:
        name = getattr(model, "model_name", type(model).__name__)
        raise CheckpointError(f"{source}: does not fit {name}: {'; '.join(problems)}")
    model.load_state_dict(sd, strict=False)  # every key was checked above
    return model
