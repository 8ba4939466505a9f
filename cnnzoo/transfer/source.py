"""Where transferred weights come from: `load_source(SPEC)` for
- a run folder (RUN/config.json + best.safetensors), as `cnnzoo train` writes it;
- a weights file: cnnzoo safetensors (their metadata says what network and normalisation
  they belong to), or torchvision-format weights (.pth/.pt/.safetensors) for the families
  that share its names, with `model=NAME`;
- `pretrained:NAME`: the published weights of a zoo network (`create_model(name,
  pretrained=True)`).
Weights that do not fit their network name the first mismatched keys and shapes.

`Source.sha256` hashes the weights themselves (names, dtypes, shapes, bytes), whatever the
file they came in: the feature cache is keyed by it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from cnnzoo.errors import CheckpointError, CnnzooError

# torchvision's ImageNet normalisation: what its published weights expect
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
PRETRAINED = "pretrained:"


@dataclass
class Source:
    model: nn.Module  # eval mode, on the CPU
    model_name: str
    model_kwargs: dict
    input_size: tuple[int, int, int]  # (C, H, W) the weights were trained at
    mean: list[float]
    std: list[float]
    classes: list[str] | None
    sha256: str
    spec: str  # what the user gave
    config: dict | None = None  # the source run's config.json
    read: dict = field(default_factory=dict)  # how to read photos for it (Preprocess fields)


def state_sha256(state_dict: dict) -> str:
    """sha256 of a state dict's content: sorted names with dtype, shape and bytes."""
    h = hashlib.sha256()
    for k in sorted(state_dict):
        v = state_dict[k].detach().cpu().contiguous()
        h.update(f"{k}|{v.dtype}|{list(v.shape)}|".encode())
        h.update(v.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _model_info(name: str):
    from cnnzoo.models.registry import UnknownModelError, model_info

    try:
        return model_info(name)
    except UnknownModelError as e:
        raise CnnzooError(str(e)) from None


def _from_config(config: dict, spec: str, model: nn.Module) -> Source:
    c = config.get("input_size") or list(_model_info(config["model"]).input_size)
    mean = config.get("mean") or IMAGENET_MEAN[: c[0]]
    std = config.get("std") or IMAGENET_STD[: c[0]]
    return Source(model.eval(), config["model"], dict(config.get("model_kwargs") or {}),
                  tuple(c), list(mean), list(std), config.get("classes"),
                  state_sha256(model.state_dict()), spec, config)


def _load_run(path: Path, spec: str) -> Source:
    from cnnzoo.runs import load_run

    model, config = load_run(path, which="best")
    return _from_config(config, spec, model)


def _load_file(path: Path, spec: str, model_name: str | None) -> Source:
    from cnnzoo.models.pretrained import load_torchvision_weights
    from cnnzoo.models.registry import create_model
    from cnnzoo.runs import weights_config

    config = weights_config(path) if path.suffix == ".safetensors" else None
    if config is not None and model_name not in (None, config.get("model")):
        raise CnnzooError(f"--model {model_name}: {path} holds {config.get('model')} weights")
    if config is None:
        if model_name is None:
            raise CnnzooError(f"{path}: weights without cnnzoo metadata (torchvision format?); "
                              "name their network with --model NAME")
        info = _model_info(model_name)
        # torchvision files hold the ImageNet head; the builder's default class count
        model = load_torchvision_weights(model_name, path)
        config = {"model": model_name, "input_size": list(info.input_size),
                  "mean": IMAGENET_MEAN[: info.input_size[0]],
                  "std": IMAGENET_STD[: info.input_size[0]], "classes": None,
                  "model_kwargs": {"transform_input": True} if model_name in (
                      "googlenet", "inception_v3") else {}}
        return _from_config(config, spec, model)
    try:
        model = create_model(config["model"], num_classes=config["num_classes"],
                             in_chans=config["in_chans"], **config.get("model_kwargs", {}))
    except (KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: its metadata does not describe a zoo model ({e})") from None
    load_torchvision_weights(model, path)  # the key-by-key check, naming what does not fit
    return _from_config(config, spec, model)


def _load_pretrained(name: str, spec: str) -> Source:
    from cnnzoo.models.registry import create_model

    _model_info(name)  # an unknown name: the closest ones
    model = create_model(name, pretrained=True)  # fetched and sha256-checked (weights.py)
    cfg = model.pretrained_cfg
    config = {"model": name, "input_size": cfg["input_size"], "mean": cfg["mean"],
              "std": cfg["std"], "classes": cfg["classes"],
              "model_kwargs": dict(cfg["model_kwargs"])}
    source = _from_config(config, spec, model)
    # photos read as the weights were evaluated: shorter side to `resize`, centre crop
    source.read = {"shorter": cfg["resize"], "interpolation": cfg["interpolation"]}
    return source


def load_source(spec: str | os.PathLike, model: str | None = None) -> Source:
    """The network and weights named by `spec` (see the module doc); `model` names the
    network of a torchvision-format weights file."""
    text = str(spec)
    if text.startswith(PRETRAINED):
        return _load_pretrained(text[len(PRETRAINED):], text)
    path = Path(text).expanduser()
    if path.is_dir():
        return _load_run(path, text)
    if path.is_file():
        return _load_file(path, text, model)
    raise CnnzooError(f"{text}: no such run folder or weights file (or use pretrained:NAME)")
