"""Training on a user's photos (`--dataset folder --data-dir DIR`), then eval and predict."""

import json

import numpy as np
import pytest
from PIL import Image

from cnnzoo.cli import main
from cnnzoo.errors import DataError
from cnnzoo.evaluate import evaluate_run

COLOURS = {"cat": (200, 40, 40), "dog": (40, 200, 40), "owl": (40, 40, 200)}


def photos(root, per_class, seed, size=(48, 40)):
    """Noisy photos of one colour per class, not at the model's size (they get resized)."""
    rng = np.random.default_rng(seed)
    for name, rgb in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            a = np.clip(np.array(rgb) + rng.normal(0, 25, (*size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(a).save(root / name / f"{i}.png")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("photos")
    photos(d / "train", 20, seed=0)
    photos(d / "test", 5, seed=1)
    out = d / "run"
    code = main(["train", "lenet5", "--dataset", "folder", "--data-dir", str(d), "--epochs",
                 "3", "--batch-size", "8", "--lr", "3e-3", "--augment", "flip", "--threads",
                 "1", "--eval-test", "--out", str(out)])
    assert code == 0
    return d, out


def test_train_on_a_photo_folder(run, capsys):
    d, out = run
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["dataset"] == "folder" and cfg["classes"] == ["cat", "dog", "owl"]
    # lenet5 takes 1x32x32: the photos are converted and resized to that, as recorded
    assert cfg["input_size"] == [1, 32, 32]
    assert cfg["dataset_kwargs"] == {"image_size": [32, 32], "channels": 1}
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert recs[-1]["kind"] == "test" and recs[-1]["test_acc"] == 1.0  # colours: easy
    assert "act1" in [r for r in recs if r["kind"] == "epoch"][-1]["act_var"]  # probe decoded


def test_eval_reads_the_test_folder_with_the_run_labels(run):
    d, out = run
    r = evaluate_run(out)
    assert r["n"] == 15 and r["classes"] == ["cat", "dog", "owl"] and r["top1"] == 1.0
    # a test folder of only some classes keeps the run's labels (owl stays class 2)
    only = d / "only_owls"
    photos(only, 3, seed=2)
    for c in ("cat", "dog"):
        for f in (only / c).iterdir():
            f.unlink()
        (only / c).rmdir()
    r = evaluate_run(out, data_dir=str(only))
    assert r["n"] == 3 and r["top1"] == 1.0 and r["confusion"][2][2] == 3


def test_a_test_folder_with_an_unknown_class_is_named(run, tmp_path):
    _, out = run
    photos(tmp_path, 2, seed=3)
    (tmp_path / "cat").rename(tmp_path / "tiger")
    with pytest.raises(DataError, match=r"class folder\(s\) tiger are not among the 3 classes"):
        evaluate_run(out, data_dir=str(tmp_path))


def test_folder_errors_before_training(tmp_path, capsys):
    flat = tmp_path / "flat"
    photos(flat, 4, seed=0)
    args = ["train", "lenet5", "--dataset", "folder", "--epochs", "1", "--out",
            str(tmp_path / "r")]
    assert main(args) == 2
    assert "--dataset folder needs --data-dir PATH" in capsys.readouterr().err
    assert main(args + ["--data-dir", str(flat), "--eval-test"]) == 2
    assert "has no train/ and test/ (or val/) folders" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # nothing written


def test_an_unreadable_photo_is_one_plain_warning_line(tmp_path, capfd):
    d = tmp_path / "photos"
    photos(d, 6, seed=4)
    bad = d / "dog" / "broken: copy.png"  # a ': ' in the name must not split the line
    bad.write_bytes(b"not a png")
    code = main(["train", "lenet5", "--dataset", "folder", "--data-dir", str(d), "--epochs",
                 "2", "--batch-size", "4", "--threads", "1", "--no-monitor", "--out",
                 str(tmp_path / "run")])
    assert code == 0
    err = capfd.readouterr().err
    lines = [x for x in err.splitlines() if "unreadable" in x]
    assert len(lines) == 1, err  # once per file, though it is read every epoch
    assert lines[0].startswith(f"warning: skipped unreadable image {bad} (")
    assert lines[0].endswith(")") and "cannot identify image file" in lines[0]
    assert "UserWarning" not in err and "trainer.py" not in err
