"""Export: every registered model to ONNX, checked by onnx.checker and matched by
onnxruntime; dynamic batch; metadata; torch.export programs; the CLI; no half files."""

from __future__ import annotations

import builtins
import copy
import json

import pytest
import torch
from safetensors.torch import save_file
from test_infer import small_model  # BN statistics calibrated: logits of unit scale

import cnnzoo
from cnnzoo.cli import main
from cnnzoo.errors import CnnzooError
from cnnzoo.export import (
    ExportError,
    MissingDependency,
    export_onnx,
    export_pt2,
    read_onnx_metadata,
    read_pt2_metadata,
)

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

ALL = cnnzoo.list_models()
# Export time grows with the graph: these take ~15-100 s each on a loaded 2-core machine (one
# representative per family stays fast); marked heavy, they run in `make test-all`, not in
# `make test`, which would otherwise spend most of its time here.
SLOW = {"resnet1202", "plain_cifar1202", "preact_resnet1001", "densenet264", "wrn28_10", "wrn",
        "densenet_bc250", "densenet_bc190", "inception_resnet_v2", "inception_v4",
        "densenet121", "densenet169", "densenet201", "densenet161", "fractalnet40",
        "resnet101", "resnet152", "plain101", "plain152", "preact_resnet101",
        "preact_resnet152", "wide_resnet50_2", "wide_resnet101_2", "resnext101_1x64d",
        "resnext101_2x40d", "resnext101_4x24d", "resnext101_8x14d", "resnext101_32x4d",
        "resnext101_32x8d", "resnext101_64x4d", "preact_resnet164", "resnet110",
        "plain_cifar110", "preact_resnet110", "alexnet_paper", "zfnet", "plain50",
        "resnext50_1x64d", "resnext50_2x40d", "resnext50_4x24d", "resnext50_8x14d",
        "wrn16_8", "wrn40_4", "vgg13", "vgg13_bn", "vgg16", "vgg19", "vgg19_bn"}


def ort_logits(path, x: torch.Tensor) -> torch.Tensor:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0])


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.heavy) if n in SLOW else n
                                  for n in ALL])
def test_every_model_exports_and_matches_onnxruntime(name, tmp_path):
    model, size = small_model(name)
    path = tmp_path / f"{name}.onnx"
    r = export_onnx(model, path, input_size=size)
    onnx.checker.check_model(str(path))
    x = torch.randn(1, *size, generator=torch.Generator().manual_seed(7))  # not the export's
    with torch.no_grad():
        ref = model(x)
    got = ort_logits(path, x)
    assert got.shape == ref.shape == (1, 10)
    assert torch.isfinite(ref).all() and ref.abs().max() < 1e5  # calibrated: a real check
    diff, limit = (got - ref).abs().max().item(), 1e-4 * max(1.0, ref.abs().max().item())
    if diff >= limit:  # only where PyTorch cannot reproduce its own float32 result either
        twin = copy.deepcopy(model).to(memory_format=torch.channels_last)
        with torch.no_grad():
            spread = (twin(x.contiguous(memory_format=torch.channels_last)) - ref).abs().max()
        assert spread > limit and diff < 2 * spread.item()
        assert r.pytorch_spread is not None and r.tolerance == 2 * r.pytorch_spread
    assert r.max_abs_diff < r.tolerance and r.batches == [1]


def test_dynamic_batch_runs_at_other_batch_sizes(tmp_path):
    model, size = small_model("resnet20")
    path = tmp_path / "r20.onnx"
    r = export_onnx(model, path, input_size=size, dynamic_batch=True)
    assert r.batches == [1, 3]
    dim = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0]
    assert dim.dim_param and not dim.dim_value  # a named free dimension
    for b in (3, 5):
        x = torch.randn(b, *size)
        with torch.no_grad():
            ref = model(x)
        assert (ort_logits(path, x) - ref).abs().max().item() < 1e-4 * max(1, ref.abs().max())
    fixed = tmp_path / "fixed.onnx"
    export_onnx(model, fixed, input_size=size)
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.InvalidArgument):  # fixed batch 1
        ort_logits(fixed, torch.randn(3, *size))


def make_run(root, name="resnet20"):
    """A run folder as the trainer writes it: config.json + weights.safetensors."""
    torch.manual_seed(0)
    model = cnnzoo.create_model(name, num_classes=3)
    run = root / "run"
    run.mkdir()
    config = {"model": name, "model_kwargs": {}, "num_classes": 3, "in_chans": 3,
              "input_size": [3, 32, 32], "classes": ["cat", "dog", "ship"],
              "mean": [0.49, 0.48, 0.45], "std": [0.25, 0.24, 0.26], "dataset": "cifar10"}
    (run / "config.json").write_text(json.dumps(config))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(run / "weights.safetensors"), metadata={"cnnzoo": json.dumps(config)})
    return run, model.eval(), config


def test_cli_export_run_carries_classes_and_preprocessing(tmp_path, capsys):
    run, model, config = make_run(tmp_path)
    out, prog = tmp_path / "net.onnx", tmp_path / "net.pt2"
    assert main(["export", str(run), "--onnx", str(out), "--pt2", str(prog),
                 "--dynamic-batch"]) == 0
    text = capsys.readouterr().out
    assert f"wrote {out}" in text and f"wrote {prog}" in text and "checked at batch 1 and 3" in text
    for meta in (read_onnx_metadata(out), read_pt2_metadata(prog)):
        assert meta["classes"] == ["cat", "dog", "ship"]
        assert meta["preprocessing"]["mean"] == config["mean"]
        assert meta["preprocessing"]["std"] == config["std"]
        assert meta["input_size"] == [3, 32, 32] and meta["model"] == "resnet20"
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(props["classes"]) == ["cat", "dog", "ship"]  # readable without cnnzoo
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert json.loads(sess.get_modelmeta().custom_metadata_map["preprocessing"])["std"] == \
        config["std"]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)  # the run's trained weights, not a fresh model
    assert (ort_logits(out, x) - ref).abs().max() < 1e-4 * max(1, ref.abs().max())
    loaded = torch.export.load(str(prog)).module()
    assert torch.allclose(loaded(x), ref, atol=1e-4, rtol=1e-4)


def test_pt2_of_a_model_name(tmp_path, capsys):
    path = tmp_path / "lenet.pt2"
    assert main(["export", "lenet5", "--pt2", str(path)]) == 0
    meta = read_pt2_metadata(path)
    assert meta["model"] == "lenet5" and meta["source"] == "random initialisation"
    assert meta["num_classes"] == 10 and "preprocessing" not in meta


def test_without_onnx_one_clear_line(tmp_path, capsys, monkeypatch):
    real = builtins.__import__

    def no_onnx(name, *args, **kw):
        if name.split(".")[0] in ("onnx", "onnxruntime", "onnxscript"):
            raise ImportError(f"No module named {name!r}", name=name)
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    out = tmp_path / "x.onnx"
    assert main(["export", "lenet5", "--onnx", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "pip install 'cnnzoo[onnx]'" in err and err.startswith("cnnzoo export: error:")
    assert not out.exists()
    with pytest.raises(MissingDependency):
        export_onnx(cnnzoo.create_model("lenet5"), out)


class _ExportsWrong(torch.nn.Module):
    """Adds 1 to its logits only while being exported: the file cannot match PyTorch."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3)

    def forward(self, x):
        y = self.conv(x).mean((2, 3))
        return y + 1 if torch.compiler.is_exporting() else y


def test_a_failed_check_leaves_nothing_behind(tmp_path):
    model = _ExportsWrong().eval()
    with pytest.raises(ExportError, match="differs from PyTorch by 1"):
        export_onnx(model, tmp_path / "m.onnx", input_size=(1, 8, 8))
    with pytest.raises(ExportError, match="differs from PyTorch by 1"):
        export_pt2(model, tmp_path / "m.pt2", input_size=(1, 8, 8))
    assert list(tmp_path.iterdir()) == []


def test_export_leaves_the_model_alone(tmp_path):
    model, size = small_model("resnet20")
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    types = [type(m) for m in model.modules()]
    export_onnx(model, tmp_path / "m.onnx", input_size=size)  # exports a folded copy
    assert model.training and [type(m) for m in model.modules()] == types
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["export", "lenet5"]) == 2
    assert "--onnx FILE" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nope" / "run"), "--onnx", "x.onnx"]) == 2
    err = capsys.readouterr().err
    assert "not a run folder" in err and len(err.strip().splitlines()) == 1
    assert main(["export", "resnet5", "--onnx", str(tmp_path / "x.onnx")]) == 2
    assert "unknown model" in capsys.readouterr().err
    with pytest.raises(CnnzooError, match="input_size"):
        export_onnx(torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1)), tmp_path / "y.onnx")
