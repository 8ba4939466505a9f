"""Export a model to ONNX, checked before the file exists.

    export_onnx(model, "net.onnx", input_size=(3, 32, 32), dynamic_batch=True,
                metadata=run_metadata(config))

The graph comes from PyTorch's torch.export-based exporter (the supported one; the
TorchScript exporter is deprecated), from a copy of the model with batch norm folded (fewer
nodes to translate; the check below compares against the unfolded model). The file is
written to a temp path, passed through `onnx.checker` (full check, with shape inference),
run by onnxruntime on random inputs (at its fixed batch size, or at batches 1 and 3 with a
dynamic batch dimension) and compared with PyTorch; only then is it renamed into place. The
run's class names and preprocessing travel in the model's `metadata_props` (see
`run_metadata`).

onnx / onnxruntime / onnxscript are an optional extra: `pip install 'cnnzoo[onnx]'`.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from cnnzoo.errors import CnnzooError
from cnnzoo.utils.io import atomic_path

INPUT_NAME, OUTPUT_NAME = "input", "logits"


class MissingDependency(CnnzooError):
    """An optional package the command needs is not installed."""


class ExportError(CnnzooError):
    """The model cannot be exported, or the exported file does not match PyTorch."""


def require_onnx():
    """(onnx, onnxruntime), or MissingDependency with the one line that fixes it."""
    try:
        import onnx
        import onnxruntime
        import onnxscript  # noqa: F401  (the torch.export-based exporter needs it)
    except ImportError as e:
        raise MissingDependency(f"ONNX export needs {e.name or 'onnx'}: pip install "
                                "'cnnzoo[onnx]' (onnx, onnxruntime, onnxscript)") from None
    return onnx, onnxruntime


@dataclass
class ExportResult:
    path: Path
    format: str  # "onnx" or "pt2"
    max_abs_diff: float  # largest |exported - PyTorch| over the checked logits
    scale: float  # largest |logit| of the PyTorch reference
    tolerance: float  # what max_abs_diff had to stay below
    batches: list[int]
    metadata: dict = field(default_factory=dict)
    # PyTorch's own NCHW vs channels-last difference, measured only when the 1e-4 limit was
    # not met (an ill-conditioned net); the tolerance is then twice it
    pytorch_spread: float | None = None

    @property
    def bytes(self) -> int:
        return self.path.stat().st_size


def run_metadata(config: dict | None, *, model_name: str | None = None,
                 input_size=None, num_classes: int | None = None, source: str = "") -> dict:
    """What a deployed file needs besides the graph: class names and preprocessing (from a
    run's config.json), model name, input size. Without a run: the model's own defaults,
    random weights, no normalisation known."""
    from cnnzoo import __version__

    config = config or {}
    size = list(input_size or config.get("input_size") or [])
    meta = {
        "cnnzoo_version": __version__,
        "model": config.get("model", model_name),
        "model_kwargs": config.get("model_kwargs", {}),
        "num_classes": config.get("num_classes", num_classes),
        "classes": config.get("classes"),
        "input_size": size,
        "source": source or ("run" if config else "random initialisation"),
    }
    if config.get("mean") is not None:
        meta["preprocessing"] = {
            "layout": "NCHW float32", "scale": "pixel / 255 (0..1)",
            "mean": config["mean"], "std": config["std"],
            "normalise": "(x - mean) / std per channel",
            "resize": f"shorter side to {size[1] if size else '?'}, centre crop to "
                      f"{'x'.join(map(str, size[1:]))}",
        }
    return meta


@contextlib.contextmanager
def _quiet():
    """The exporters' progress prints, tracer warnings and 'torchvision is not installed'
    logs are noise to a user who gets a checked file or one error line."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """model in eval mode for the block, its own mode restored after."""
    was = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was)


def default_metadata(model: nn.Module, size) -> dict:
    """run_metadata for a model that comes without a run: its name, size and class count."""
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    n = getattr(head, "out_features", getattr(head, "out_channels", None))
    return run_metadata(None, model_name=getattr(model, "model_name", type(model).__name__),
                        input_size=size, num_classes=n)


def _input_size(model: nn.Module, input_size) -> tuple[int, int, int]:
    size = input_size or getattr(model, "default_input_size", None)
    if size is None:
        raise CnnzooError(f"export: {type(model).__name__} has no default_input_size; pass "
                          "input_size=(C, H, W) (--input CxHxW)")
    return tuple(int(v) for v in size)


def prepare(model: nn.Module, input_size, fold_bn: bool) -> nn.Module:
    """The module that gets exported: an eval-mode copy, batch norm folded if asked."""
    if not fold_bn:
        return copy.deepcopy(model).eval()
    from cnnzoo.infer.optimize import fold_batchnorm

    return fold_batchnorm(model, input_size)[0]


def channels_last_spread(model: nn.Module, xs: list[torch.Tensor]) -> float:
    """max |model(x) NCHW - model(x) channels-last| over `xs`: how far PyTorch's own float32
    result moves with a different kernel. Deep plain nets at random initialisation amplify
    rounding so much (plain_cifar110: 50% of the largest logit) that no other
    implementation can match them to 1e-4."""
    from cnnzoo.models.layers import main_logits

    twin = copy.deepcopy(model).eval().to(memory_format=torch.channels_last)
    p = next(twin.parameters())
    worst = 0.0
    with eval_mode(model), torch.no_grad():
        for x in xs:
            x = x.to(p.device, p.dtype)
            a = main_logits(model(x)).float().cpu()
            b = main_logits(twin(x.contiguous(memory_format=torch.channels_last))).float().cpu()
            worst = max(worst, (a - b).abs().max().item())
    return worst


def compare(model: nn.Module, run, size, batches, atol: float) -> dict:
    """Check `run` (the exported model) against `model` on random inputs at each batch size:
    {"max_abs_diff", "scale" (largest |logit|), "tolerance", "pytorch_spread"}, or
    ExportError. The limit is atol for unit logits, atol x the largest logit above 1; where
    PyTorch's own result moves more than that between NCHW and channels-last (an
    ill-conditioned net), twice that movement, with "pytorch_spread" saying so."""
    from cnnzoo.models.layers import main_logits

    p = next(model.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")
    dtype = p.dtype if p is not None else torch.float32
    gen = torch.Generator().manual_seed(0)
    worst, scale, xs = 0.0, 0.0, []
    for b in batches:
        x = torch.randn(b, *size, generator=gen).to(dtype)
        xs.append(x)
        with eval_mode(model), torch.no_grad():
            ref = main_logits(model(x.to(device))).float().cpu()
        if not torch.isfinite(ref).all():  # NaN would compare as "no difference"
            raise ExportError("PyTorch's own logits are not finite on random inputs (an "
                              "untrained very deep net overflows float32?): nothing to check "
                              "the export against; nothing written")
        got = torch.as_tensor(run(x)).float()
        if got.shape != ref.shape:
            raise ExportError(f"the exported model gives shape {tuple(got.shape)} at batch {b}, "
                              f"PyTorch {tuple(ref.shape)}")
        diff = (got - ref).abs().max().item()
        worst = diff if math.isnan(diff) else max(worst, diff)
        scale = max(scale, ref.abs().max().item())
    # Random-init deep nets reach logits of 1e4+; float32 then differs by more than 1e-4 in
    # absolute terms while agreeing to 1e-7 relative, so the limit scales above unit logits.
    limit, spread = atol * max(1.0, scale), None
    if not worst < limit and p is not None:
        spread = channels_last_spread(model, xs)
        limit = max(limit, 2 * spread)
    if not worst < limit:
        why = (f"; PyTorch itself moves by {spread:.3g} between NCHW and channels-last"
               if spread else "")
        raise ExportError(f"the exported model differs from PyTorch by {worst:.3g} (limit "
                          f"{limit:.3g}, largest logit {scale:.3g}{why}); nothing written")
    return {"max_abs_diff": worst, "scale": scale, "tolerance": limit, "pytorch_spread": spread}


def export_onnx(model: nn.Module, path: str | os.PathLike, *, input_size=None,
                dynamic_batch: bool = False, metadata: dict | None = None,
                atol: float = 1e-4, opset: int | None = None, fold_bn: bool = True,
                batch: int = 1) -> ExportResult:
    """Write `model` (eval mode) as ONNX to `path`, checked (see the module docstring).
    `batch` is the fixed batch size of a graph without a dynamic batch dimension.
    `model` itself is not changed."""
    onnx, ort = require_onnx()
    path = Path(path)
    size = _input_size(model, input_size)
    net = prepare(model, size, fold_bn)
    # torch.export treats a size-1 dimension as the constant 1, so a dynamic batch is traced
    # at batch 2.
    x = torch.randn(2 if dynamic_batch else batch, *size)
    p = next(net.parameters(), None)
    if p is not None:
        x = x.to(p.device, p.dtype)
    dims = ({0: torch.export.Dim("batch")},) if dynamic_batch else None
    try:
        with _quiet():
            prog = torch.onnx.export(net, (x,), None, dynamo=True, verbose=False,
                                     external_data=False, input_names=[INPUT_NAME],
                                     output_names=[OUTPUT_NAME], dynamic_shapes=dims,
                                     opset_version=opset)
            proto = prog.model_proto
    except Exception as e:  # the exporter's errors are long; the first line says what failed
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ExportError(f"{path}: cannot export {getattr(model, 'model_name', '')} to ONNX "
                          f"({type(e).__name__}: {first[:300]})") from e
    meta = dict(metadata or default_metadata(model, size))
    meta.update(batch_norm_folded=fold_bn, dynamic_batch=dynamic_batch)
    del proto.metadata_props[:]
    for key, value in _flat_metadata(meta).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    batches = [1, 3] if dynamic_batch else [batch]
    with atomic_path(path) as tmp:
        onnx.save_model(proto, str(tmp))
        try:
            onnx.checker.check_model(str(tmp), full_check=True)
        except onnx.checker.ValidationError as e:
            raise ExportError(f"{path}: onnx.checker rejects the exported graph: "
                              f"{str(e).strip().splitlines()[0][:300]}") from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = torch.get_num_threads()
        sess = ort.InferenceSession(str(tmp), opts, providers=["CPUExecutionProvider"])
        check = compare(model, lambda xb: sess.run(None, {INPUT_NAME: xb.numpy()})[0],
                        size, batches, atol)
    return ExportResult(path, "onnx", batches=batches, metadata=meta, **check)


def _flat_metadata(meta: dict) -> dict[str, str]:
    """metadata_props are string pairs: the whole description under "cnnzoo" (JSON), and
    the fields a deployment reads most as keys of their own."""
    flat = {"cnnzoo": json.dumps(meta, sort_keys=True)}
    for key in ("model", "classes", "input_size", "preprocessing", "num_classes"):
        if meta.get(key) is not None:
            v = meta[key]
            flat[key] = v if isinstance(v, str) else json.dumps(v)
    return flat


def read_onnx_metadata(path: str | os.PathLike) -> dict:
    """The cnnzoo description stored in an exported ONNX file ({} if none)."""
    onnx, _ = require_onnx()
    proto = onnx.load(str(path), load_external_data=False)
    props = {p.key: p.value for p in proto.metadata_props}
    return json.loads(props["cnnzoo"]) if "cnnzoo" in props else {}
