"""Export a model as a `torch.export` program (.pt2), checked before the file exists.

The program is saved to a temp path, loaded back with `torch.export.load`, run on random
inputs and compared with the PyTorch model; then renamed into place. The same metadata as
the ONNX export travels as `cnnzoo.json` in the archive's extra files:

    extra = {"cnnzoo.json": ""}
    program = torch.export.load("net.pt2", extra_files=extra)
    meta = json.loads(extra["cnnzoo.json"])
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn as nn

from cnnzoo.export.onnx import (
    ExportError,
    ExportResult,
    _input_size,
    _quiet,
    compare,
    default_metadata,
    prepare,
)
from cnnzoo.utils.io import atomic_path

META_FILE = "cnnzoo.json"


def export_pt2(model: nn.Module, path: str | os.PathLike, *, input_size=None,
               dynamic_batch: bool = False, metadata: dict | None = None,
               atol: float = 1e-4, fold_bn: bool = True) -> ExportResult:
    """Write `model` (eval mode) as a torch.export program to `path`, checked."""
    path = Path(path)
    size = _input_size(model, input_size)
    net = prepare(model, size, fold_bn)
    p = next(net.parameters(), None)
    x = torch.randn(2 if dynamic_batch else 1, *size)  # size-1 dims would be specialised
    if p is not None:
        x = x.to(p.device, p.dtype)
    dims = ({0: torch.export.Dim("batch")},) if dynamic_batch else None
    try:
        with _quiet():
            program = torch.export.export(net, (x,), dynamic_shapes=dims)
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ExportError(f"{path}: torch.export cannot capture "
                          f"{getattr(model, 'model_name', '')} ({type(e).__name__}: "
                          f"{first[:300]})") from e
    meta = dict(metadata or default_metadata(model, size))
    meta.update(batch_norm_folded=fold_bn, dynamic_batch=dynamic_batch)
    batches = [1, 3] if dynamic_batch else [1]
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:  # a file object: torch.export.save wants a .pt2 name
            torch.export.save(program, f, extra_files={META_FILE: json.dumps(meta)})
        with open(tmp, "rb") as f:
            loaded = torch.export.load(f).module()
        dev = x.device

        def run(xb):
            with torch.no_grad():
                return loaded(xb.to(dev, x.dtype)).cpu()

        check = compare(model, run, size, batches, atol)
    return ExportResult(path, "pt2", batches=batches, metadata=meta, **check)


def read_pt2_metadata(path: str | os.PathLike) -> dict:
    """The cnnzoo description stored in an exported .pt2 file ({} if none)."""
    extra = {META_FILE: ""}
    torch.export.load(str(path), extra_files=extra)
    return json.loads(extra[META_FILE]) if extra[META_FILE] else {}
