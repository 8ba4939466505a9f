"""Transfer learning end to end: linear and fine-tuning leave every frozen parameter and
buffer bit-identical, features mode's cache and run folder, channel adaptation in a run, the
comparison report, every bad input as one line with nothing written, and the CLI (the
lecture's user story: a photo folder, a transfer, then predict)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import cnnzoo
from cnnzoo import runs
from cnnzoo.cli import main
from cnnzoo.errors import CheckpointError, DataError
from cnnzoo.models.backbone import UnknownLayerError
from cnnzoo.transfer import load_source, load_target
from cnnzoo.transfer.compare import compare
from cnnzoo.transfer.modes import top1_on, transfer

SYN = {"num_samples": 96, "channels": 3, "size": 16, "num_classes": 3}
FAST = {"epochs": 1, "batch_size": 16, "monitor": False, "augment": ""}


def make_source(path, name="resnet20", in_chans=3, size=16, classes=4, **kw):
    """A run folder holding a randomly initialised network with non-trivial BN statistics."""
    torch.manual_seed(0)
    model = cnnzoo.create_model(name, num_classes=classes, in_chans=in_chans, **kw)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.num_batches_tracked.fill_(123)
    config = {"model": name, "model_kwargs": kw, "num_classes": classes, "in_chans": in_chans,
              "input_size": [in_chans, size, size], "classes": [f"s{i}" for i in range(classes)],
              "mean": [0.5] * in_chans, "std": [0.25] * in_chans, "dataset": "synthetic"}
    path.mkdir(parents=True)
    runs.write_config(path, config)
    runs.save_weights(path / runs.BEST, model.state_dict(), config)
    return model.state_dict()


def _weights(run_dir, which):
    return runs.read_weights(run_dir / which)


def test_linear_leaves_the_whole_body_bit_identical(tmp_path):
    before = make_source(tmp_path / "src")
    src = load_source(tmp_path / "src")
    tgt = load_target(src, "synthetic", dataset_kwargs=SYN)
    r = transfer(src, tgt, "linear", out=tmp_path / "lin", device="cpu",
                 train_overrides=FAST)
    assert r.trainable == 64 * 3 + 3 and r.details["steps"] > 0
    for which in (runs.BEST, runs.WEIGHTS):
        after = _weights(tmp_path / "lin", which)
        for k, v in before.items():
            if not k.startswith("fc."):
                assert torch.equal(after[k], v), f"{k} changed in linear mode ({which})"
        assert after["fc.weight"].shape == (3, 64)
        assert "bn1.running_mean" in after and after["bn1.num_batches_tracked"] == 123


def test_finetune_leaves_the_frozen_stages_bit_identical_and_trains_the_rest(tmp_path):
    before = make_source(tmp_path / "src")
    src = load_source(tmp_path / "src")
    tgt = load_target(src, "synthetic", dataset_kwargs=SYN)
    r = transfer(src, tgt, "finetune", out=tmp_path / "ft", freeze_to="layer2",
                 device="cpu", train_overrides=FAST, body_lr_mult=0.5)
    after = _weights(tmp_path / "ft", runs.WEIGHTS)
    frozen = ("conv1.", "bn1.", "layer1.", "layer2.")
    for k, v in before.items():
        if k.startswith(frozen):
            assert torch.equal(after[k], v), f"{k} changed below the cut"
    moved = [k for k in before if k.startswith("layer3.") and not torch.equal(after[k], before[k])]
    assert any(k.endswith("running_mean") for k in moved), "layer3's BN statistics train"
    assert any(k.endswith("conv1.weight") for k in moved), "layer3's convs train"
    assert r.details["body_lr_mult"] == 0.5 and r.freeze_to == "layer2"
    saved = json.loads((tmp_path / "ft" / "transfer.json").read_text())
    assert saved["mode"] == "finetune" and saved["source_sha256"] == src.sha256


def test_features_mode_caches_and_writes_a_predicting_run(tmp_path):
    make_source(tmp_path / "src", "lenet5", in_chans=3, size=32, classes=4)
    src = load_source(tmp_path / "src")
    tgt = load_target(src, "synthetic", dataset_kwargs={**SYN, "channels": 1, "size": 28})
    assert tgt.input_size == (1, 32, 32) and "resized 28x28 -> 32x32" in tgt.notes[0]
    kw = dict(cache_dir=tmp_path / "cache", device="cpu", softmax={"epochs": 10})
    r = transfer(src, tgt, "features", out=tmp_path / "f1", **kw)
    assert not any(r.details["reused"].values())
    assert any("summed over its input channels" in n for n in r.notes)
    model, config = runs.load_run(tmp_path / "f1")
    assert config["in_chans"] == 1 and config["classes"] == tgt.classes
    assert top1_on(model, tgt.test, config["mean"], config["std"]) == pytest.approx(
        r.test_acc)
    r2 = transfer(src, tgt, "features", out=tmp_path / "f2", **kw)
    assert all(r2.details["reused"].values()) and r2.test_acc == r.test_acc
    with pytest.raises(cnnzoo.errors.CnnzooError, match="already holds a run"):
        transfer(src, tgt, "features", out=tmp_path / "f1", **kw)


def test_compare_report_side_by_side(tmp_path):
    make_source(tmp_path / "src", "lenet5", in_chans=3, size=32, classes=4)
    src = load_source(tmp_path / "src")
    tgt = load_target(src, "synthetic", dataset_kwargs={**SYN, "size": 32})
    r = compare(src, tgt, tmp_path / "rep", device="cpu", train_overrides=FAST,
                softmax={"epochs": 5}, cache_dir=tmp_path / "cache")
    names = [row["name"] for row in r["rows"]]
    assert names == ["linear", "features", "finetune-s2", "finetune-s4", "full", "scratch"]
    assert r["cuts"] == ["none (full)", "s2", "s4", "body (linear)"]
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "from scratch" in text and "finetune-s4" in text
    assert (tmp_path / "rep" / "accuracy_vs_cut.png").stat().st_size > 1000
    saved = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert saved["transfer_beats_scratch"] == (saved["best_acc"] > saved["scratch_acc"])
    for name in names:
        assert runs.is_run(tmp_path / "rep" / "runs" / name)


# --- bad input: one line, nothing written ---------------------------------------------------

def photos(root, classes=("red", "green", "blue"), n=6, size=40, empty=()):
    g = np.random.default_rng(0)
    for i, c in enumerate(classes):
        (root / c).mkdir(parents=True)
        if c in empty:
            continue
        for j in range(n):
            a = g.integers(0, 80, (size, size, 3), dtype=np.uint8)
            a[:, :, i % 3] += 150
            Image.fromarray(a).save(root / c / f"{j}.png")
    return root


def run_cli(argv, capsys):
    code = main(argv)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_bad_inputs_are_one_line_and_write_nothing(tmp_path, capsys):
    make_source(tmp_path / "src", "lenet5", in_chans=3, size=32, classes=4)
    out = tmp_path / "out"
    torch.manual_seed(1)
    rgb = cnnzoo.create_model("lenet5", in_chans=3)  # torchvision-style: no metadata
    torch.save(rgb.state_dict(), tmp_path / "rgb.pth")
    cases = {
        "architecture": (["transfer", str(tmp_path / "rgb.pth"), "--model", "lenet5_1998"],
                         "does not fit lenet5_1998"),
        "shapes": (["transfer", str(tmp_path / "rgb.pth"), "--model", "lenet5"],
                   "shape mismatch: c1.weight [6, 3, 5, 5] in the file, [6, 1, 5, 5] in the "
                   "model"),
        "one class": (["transfer", str(tmp_path / "src"), "--data-dir",
                       str(photos(tmp_path / "one", classes=("cat",)))],
                      "1 class (cat); a classifier needs at least 2"),
        "empty class": (["transfer", str(tmp_path / "src"), "--data-dir",
                         str(photos(tmp_path / "empty", empty=("green",)))],
                        "class green has no images"),
    }
    for what, (argv, msg) in cases.items():
        if "--data-dir" not in argv:
            argv = argv + ["--data-dir", str(photos(tmp_path / f"p-{what}"))]
        code, _, err = run_cli(argv + ["--dataset", "folder", "--mode", "linear", "--out",
                                       str(out)], capsys)
        assert code == 2, what
        assert len(err.strip().splitlines()) == 1 and msg in err, (what, err)
        assert not out.exists(), what
    # another architecture: the first missing and unexpected keys are named
    with pytest.raises(CheckpointError, match=r"missing keys \(\d+\): c3.convs"):
        load_source(tmp_path / "rgb.pth", model="lenet5_1998")
    # a layer that does not exist: the valid names near it, and the stages
    p = photos(tmp_path / "pets")
    for argv in (["features", str(tmp_path / "src"), "--layer", "c6", "-o",
                  str(tmp_path / "f.npy")],
                 ["transfer", str(tmp_path / "src"), "--mode", "features", "--layer", "c6",
                  "--out", str(out)]):
        code, _, err = run_cli(argv + ["--dataset", "folder", "--data-dir", str(p),
                                       "--cache-dir", str(tmp_path / "cache")], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert "no layer 'c6'; closest: " in err and "c5" in err and "stages: s2, s4" in err
        assert not out.exists() and not (tmp_path / "f.npy").exists()
        assert not (tmp_path / "cache").exists()
    with pytest.raises(UnknownLayerError):
        src = load_source(tmp_path / "src")
        transfer(src, load_target(src, "folder", p), "features", out=out, layer="nope")
    with pytest.raises(DataError, match="--classes"):
        load_target(load_source(tmp_path / "src"), "folder", p, classes="red,dog")


# --- the CLI ------------------------------------------------------------------------------

def test_cli_features_to_npy_and_rerun_from_cache(tmp_path, capsys):
    make_source(tmp_path / "src", "lenet5", in_chans=3, size=32, classes=4)
    argv = ["features", str(tmp_path / "src"), "--layer", "c5", "--dataset", "synthetic",
            "--per-class", "5", "--cache-dir", str(tmp_path / "cache"), "--chunk", "16"]
    code, out, _ = run_cli(argv + ["-o", str(tmp_path / "a.npy")], capsys)
    assert code == 0 and "computed" in out
    x = np.load(tmp_path / "a.npy")
    assert x.shape == (50, 120) and np.load(tmp_path / "a.labels.npy").shape == (50,)
    meta = json.loads((tmp_path / "a.json").read_text())
    assert meta["layer"] == "c5" and meta["n"] == 50
    code, out, _ = run_cli(argv + ["-o", str(tmp_path / "b.npy")], capsys)
    assert code == 0 and "read from the cache" in out
    assert np.array_equal(np.load(tmp_path / "b.npy"), x)


def test_user_story_photo_folder_transfer_then_predict(tmp_path, capsys):
    make_source(tmp_path / "src", "lenet5", in_chans=3, size=32, classes=4)
    p = photos(tmp_path / "photos", n=8)
    code, out, err = run_cli(["transfer", str(tmp_path / "src"), "--dataset", "folder",
                              "--data-dir", str(p), "--mode", "linear", "--out",
                              str(tmp_path / "run"), "--epochs", "2", "--batch-size", "8",
                              "--device", "cpu"], capsys)
    assert code == 0, err
    assert "linear:" in out and "run:" in out
    Image.fromarray(np.full((50, 60, 3), (20, 220, 30), np.uint8)).save(tmp_path / "new.jpg")
    code, out, _ = run_cli(["predict", str(tmp_path / "run"), str(tmp_path / "new.jpg"),
                            "--topk", "3"], capsys)
    assert code == 0 and all(c in out for c in ("red", "green", "blue"))


def test_cli_transfer_report_pretrains_its_source(tmp_path, capsys, monkeypatch):
    argv = ["transfer-report", "--pretrain", "lenet5", "--pretrain-classes", "0-4",
            "--pretrain-epochs", "1", "--dataset", "synthetic", "--classes", "5-9",
            "--per-class", "12", "--stages", "s4", "--epochs", "1", "--softmax-epochs", "3",
            "--device", "cpu", "-o", str(tmp_path / "rep"), "--runs-dir", str(tmp_path / "r"),
            "--cache-dir", str(tmp_path / "cache")]
    monkeypatch.setattr("sys.argv", ["cnnzoo", *argv])  # what the report quotes
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    assert "transfer " in out and "scratch" in out
    r = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert r["source_seconds"] > 0 and r["command"].startswith("cnnzoo transfer-report")
    assert [row["name"] for row in r["rows"]] == ["linear", "features", "finetune-s4", "full",
                                                  "scratch"]
    assert runs.read_config(tmp_path / "r" / "source")["classes"] == [
        f"class{i}" for i in range(5)]
    assert r["classes"] == [f"class{i}" for i in range(5, 10)] and r["n_train"] == 60
    assert "Pretraining the source" in (tmp_path / "rep" / "report.md").read_text()
    assert not (tmp_path / "rep" / "runs").exists()
