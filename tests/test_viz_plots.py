"""Training curves from metrics.jsonl and the confusion-matrix PNG."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from cnnzoo.cli import main
from cnnzoo.errors import CheckpointError
from cnnzoo.viz.plots import plot_confusion, plot_curves, read_metrics


def write_metrics(path, epochs=4, steps=10, monitor=True, torn=False):
    lines = []
    for e in range(1, epochs + 1):
        for s in range(steps):
            step = (e - 1) * steps + s + 1
            rec = {"kind": "step", "step": step, "epoch": e, "loss": 2 * math.exp(-step / 20),
                   "lr": 0.1 * 0.1 ** (e // 3)}
            if monitor:
                rec["update_ratio"] = {"conv1": 1e-3, "fc": 2e-4}
            lines.append(json.dumps(rec))
        rec = {"kind": "epoch", "epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e,
               "train_acc": 1 - 0.3 / e, "val_acc": 1 - 0.4 / e}
        if monitor:
            rec["act_var"] = {"layer0": 1.0, "layer1": 0.5}
        lines.append(json.dumps(rec))
    text = "\n".join(lines) + "\n" + ('{"kind": "ep' if torn else "")
    path.write_text(text)
    return path


def png_size(path):
    with Image.open(path) as im:
        im.verify()
    return Image.open(path).size


def test_curves_png_with_monitoring_panels(tmp_path):
    m = write_metrics(tmp_path / "metrics.jsonl", torn=True)  # run still appending
    out = plot_curves(m, tmp_path / "curves.png")
    w, h = png_size(out)
    assert 800 <= w <= 1400 and 900 <= h <= 1500  # 3 rows of 2 panels at 100 dpi
    assert out.stat().st_size > 20_000


def test_curves_without_monitoring_have_fewer_panels(tmp_path):
    m = write_metrics(tmp_path / "metrics.jsonl", monitor=False)
    w, h = png_size(plot_curves(m, tmp_path / "c.png"))
    assert 300 <= h <= 800  # 2 rows: loss, accuracy, lr


def test_bad_metrics_files_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="nope.jsonl"):
        read_metrics(tmp_path / "nope.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "step"}\nnot json\n{"kind": "step"}\n')
    with pytest.raises(CheckpointError, match="bad.jsonl:2: not a JSON line"):
        read_metrics(bad)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(CheckpointError, match="no metrics records"):
        plot_curves(empty, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_confusion_png(tmp_path):
    cm = torch.eye(10, dtype=torch.long) * 90 + 1
    out = plot_confusion(cm, [f"class {i}" for i in range(10)], tmp_path / "cm.png")
    w, h = png_size(out)
    assert 500 <= w <= 1200 and 500 <= h <= 1200


def test_cli_plot(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    write_metrics(run / "metrics.jsonl")
    assert main(["plot", str(run)]) == 0
    assert (run / "curves.png").stat().st_size > 20_000
    assert main(["plot", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "cnnzoo plot: error:" in err and "missing/metrics.jsonl" in err


def run_folder(path, **train):
    path.mkdir(parents=True)
    write_metrics(path / "metrics.jsonl", monitor=False)
    cfg = {"model": "lenet5", "num_classes": 2, "in_chans": 1, "input_size": [1, 28, 28],
           "classes": ["a", "b"], "mean": [0.5], "std": [0.2], "train": train}
    (path / "config.json").write_text(json.dumps(cfg))
    return path / "metrics.jsonl"


def test_loss_panel_says_why_train_loss_sits_above_val(tmp_path):
    from cnnzoo.viz.plots import loss_note

    note = loss_note({"train": {"label_smoothing": 0.1, "augment": "flip,crop:4"}})
    assert "label smoothing 0.1" in note and "augmentation (flip,crop:4)" in note
    assert "validation loss without" in note
    assert loss_note({"train": {"label_smoothing": 0.0, "augment": ""}}) is None
    assert loss_note(None) is None
    # the run's own config.json decides: a plain recipe draws the same as no config at all
    # (each folder is called "run": the figure's title names it)
    plain = plot_curves(run_folder(tmp_path / "plain" / "run", label_smoothing=0.0,
                                   augment=""), tmp_path / "plain.png")
    bare = tmp_path / "bare" / "run"
    bare.mkdir(parents=True)
    write_metrics(bare / "metrics.jsonl", monitor=False)
    none = plot_curves(bare / "metrics.jsonl", tmp_path / "none.png")
    ls = run_folder(tmp_path / "ls" / "run", label_smoothing=0.1, augment="flip")
    noted = plot_curves(ls, tmp_path / "noted.png")
    a, b, c = (np.asarray(Image.open(p).convert("L")) for p in (plain, none, noted))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    (ls.parent / "config.json").write_text("{broken")
    with pytest.raises(CheckpointError, match="run/config.json: cannot read"):
        plot_curves(ls, tmp_path / "x.png")
