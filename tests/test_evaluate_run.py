"""`cnnzoo eval` / `predict` end to end on a tiny run folder written per the contract."""

import json

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

from cnnzoo.cli import main
from cnnzoo.data import load_dataset
from cnnzoo.errors import CheckpointError, DataError
from cnnzoo.evaluate import evaluate_run, predict_images
from cnnzoo.evaluate.metrics import confusion_matrix
from cnnzoo.models.registry import create_model

MEAN, STD = [0.45, 0.5, 0.55], [0.2, 0.25, 0.3]  # unusual on purpose: eval must use these
TEST = dict(num_samples=96, channels=3, size=32, num_classes=10)


def normalise(images):
    return (images.float() / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(
        STD).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A briefly trained lenet5 on synthetic 3x32x32 data: accuracy between chance and 100%."""
    torch.manual_seed(0)
    model = create_model("lenet5", num_classes=10, in_chans=3)
    train = load_dataset("synthetic", "train", num_samples=256, channels=3, size=32)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for i in range(0, 96, 32):  # 3 steps: about half right, far from chance and from 100%
        loss = F.cross_entropy(model(normalise(train.images[i:i + 32])), train.labels[i:i + 32])
        opt.zero_grad()
        loss.backward()
        opt.step()
    d = tmp_path_factory.mktemp("run")
    config = {
        "model": "lenet5", "model_kwargs": {}, "num_classes": 10, "in_chans": 3,
        "input_size": [3, 32, 32], "dataset": "synthetic", "data_dir": None,
        "classes": train.classes, "mean": MEAN, "std": STD, "train": {"epochs": 1},
        "cnnzoo_version": "0.1.0",
    }
    (d / "config.json").write_text(json.dumps(config))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(d / "weights.safetensors"))
    save_file(state, str(d / "best.safetensors"))
    return d, model.eval()


def test_eval_matches_a_hand_computed_forward_pass(run, capsys):
    d, model = run
    test = load_dataset("synthetic", "test", **TEST)
    r = evaluate_run(d, dataset=test, batch_size=40, device="cpu")
    with torch.no_grad():
        logits = model(normalise(test.images))
    top1 = (logits.argmax(1) == test.labels).float().mean().item()
    top5 = (logits.topk(5, 1).indices == test.labels[:, None]).any(1).float().mean().item()
    assert 0.2 < top1 < 0.9 and top5 < 1.0  # an imperfect model: the comparison means something
    assert r["top1"] == pytest.approx(top1) and r["top5"] == pytest.approx(top5)
    cm = confusion_matrix(logits.argmax(1), test.labels, 10)
    assert r["confusion"] == cm.tolist() and r["n"] == 96 and r["views"] == 1
    saved = json.loads((d / "eval" / "synthetic_none_best.json").read_text())
    assert saved["top1"] == r["top1"] and set(saved["per_class"]) == set(test.classes)
    png = d / "eval" / "synthetic_none_best_confusion.png"
    assert png.stat().st_size > 10_000 and Image.open(png).size[0] >= 500


def test_cli_eval_with_tta_prints_a_summary(run, capsys):
    d, _ = run
    # the run's own dataset by name: synthetic test split (512 images, 3x32x32)
    assert main(["eval", str(d), "--tta", "flip", "--which", "last", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "top-1" in out and "top-5" in out and "tta flip (2 views)" in out
    assert "class9" in out  # per-class lines
    r = json.loads((d / "eval" / "synthetic_flip_last.json").read_text())
    assert r["n"] == 512 and r["views"] == 2 and r["which"] == "last"


def test_eval_refuses_a_dataset_of_another_shape(run):
    d, _ = run
    gray = load_dataset("synthetic", "test", num_samples=8, channels=1, size=28)
    with pytest.raises(Exception, match=r"\[1, 28, 28\].*\[3, 32, 32\]"):
        evaluate_run(d, dataset=gray, device="cpu")


def test_predict_on_png_files(run, tmp_path, capsys):
    d, model = run
    test = load_dataset("synthetic", "test", **TEST)
    paths = []
    for i in range(3):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(test.images[i].permute(1, 2, 0).numpy()).save(p)
        paths.append(p)
    # a grayscale, larger image: converted to 3 channels and resized to 32x32
    Image.new("L", (64, 48), 200).save(tmp_path / "gray.png")
    res = predict_images(d, paths + [tmp_path / "gray.png"], topk=3, device="cpu")
    with torch.no_grad():
        want = model(normalise(test.images[:3])).softmax(1)
    for (path, top), p in zip(res, want):
        assert path.endswith(".png")
        v, j = p.topk(3)
        assert [name for name, _ in top] == [test.classes[k] for k in j]
        assert [q for _, q in top] == pytest.approx(v.tolist(), abs=1e-5)
    assert len(res[3][1]) == 3
    assert main(["predict", str(d), str(paths[0]), "--device", "cpu"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("img0.png") and len(out) == 6 and out[1].strip().endswith(
        test.classes[want[0].argmax()])


def test_predict_bad_images_name_the_file(run, tmp_path, capsys):
    d, _ = run
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image at all")
    with pytest.raises(DataError, match="junk.png: cannot read image"):
        predict_images(d, [junk], device="cpu")
    assert main(["predict", str(d), str(tmp_path / "missing.jpg")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"cnnzoo predict: error: {tmp_path / 'missing.jpg'}: no such image file"]


def broken_run(src, dst, mutate):
    dst.mkdir()
    for name in ("config.json", "weights.safetensors", "best.safetensors"):
        (dst / name).write_bytes((src / name).read_bytes())
    mutate(dst)
    return dst


@pytest.mark.parametrize("case, mutate, file", [
    ("no-config", lambda r: (r / "config.json").unlink(), "config.json"),
    ("bad-json", lambda r: (r / "config.json").write_text("{not json"), "config.json"),
    ("no-weights", lambda r: (r / "best.safetensors").unlink() or
     (r / "weights.safetensors").unlink(), "safetensors"),
    ("wrong-shapes", lambda r: save_file({"features.0.weight": torch.zeros(1)},
                                         str(r / "best.safetensors")), "best.safetensors"),
])
def test_broken_run_folders_are_checkpoint_errors(run, tmp_path, capsys, case, mutate, file):
    d, _ = run
    bad = broken_run(d, tmp_path / case, mutate)
    with pytest.raises(CheckpointError, match=file):
        evaluate_run(bad, dataset=load_dataset("synthetic", "test", **TEST), device="cpu")
    assert main(["eval", str(bad)]) == 2
    assert "cnnzoo eval: error:" in capsys.readouterr().err
    assert not (bad / "eval").exists()  # nothing half-written
