"""What `cnnzoo export RUN|MODEL` exports: a run's trained model (with its classes and
preprocessing), or a registered model with fresh weights."""

from __future__ import annotations

import os
from pathlib import Path

import torch.nn as nn

from cnnzoo.errors import CheckpointError
from cnnzoo.export.onnx import default_metadata, run_metadata


def _load_run():
    try:  # the run folder's own module; older trees kept it in cnnzoo.train
        from cnnzoo.runs import load_run
    except ImportError:
        from cnnzoo.train import load_run
    return load_run


def load_source(source: str | os.PathLike, *, which: str = "best", input_size=None,
                knobs: dict | None = None) -> tuple[nn.Module, tuple[int, int, int], dict]:
    """(model in eval mode on the CPU, input size, metadata) for a run folder or a model name.

    A run exports at the size it was trained on unless `input_size` is given; a model name
    at its default size (`knobs` are builder options, e.g. small_input=True)."""
    path = Path(source)
    if path.is_dir():
        model, config = _load_run()(path, which=which, device="cpu")
        size = tuple(input_size or config["input_size"])
        meta = run_metadata(config, input_size=size, source=f"run {path.name} ({which} weights)")
        return model.eval(), size, meta
    if path.exists() or os.sep in str(source):
        raise CheckpointError(f"{source}: not a run folder (expected a folder with config.json)"
                              " or a registered model name")
    from cnnzoo.models.registry import create_model

    kw = dict(knobs or {})
    model = (create_model(str(source), input_size=tuple(input_size), **kw) if input_size
             else create_model(str(source), **kw))
    size = tuple(input_size or model.default_input_size)
    return model.eval(), size, default_metadata(model, size)
