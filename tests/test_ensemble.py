"""Ensembles: metrics against hand-computed examples, chunked test-time views equal to the
unchunked ones (and really smaller), evaluate_ensemble on hand-made run folders, mismatched
members, and the CLI."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

import cnnzoo
from cnnzoo import runs
from cnnzoo.cli import main
from cnnzoo.data import tta_views
from cnnzoo.ensemble import (
    combine,
    disagreement,
    evaluate_ensemble,
    expected_calibration_error,
    gain_curve,
    member_scores,
    oracle_accuracy,
)
from cnnzoo.errors import CnnzooError

# --- metrics, by hand -----------------------------------------------------------------------

PREDS = torch.tensor([[0, 1, 2, 0], [0, 2, 2, 1], [1, 1, 0, 0]])
LABELS = torch.tensor([0, 1, 2, 3])


def test_oracle_counts_an_image_any_member_gets_right():
    assert oracle_accuracy(PREDS, LABELS) == 0.75  # nobody says 3 for the last image
    assert oracle_accuracy(PREDS[2:], LABELS) == 0.25


def test_disagreement_is_the_fraction_of_differing_top1():
    d = disagreement(PREDS)
    want = torch.tensor([[0, 0.5, 0.5], [0.5, 0, 1.0], [0.5, 1.0, 0]])
    assert torch.equal(d, want)


def test_ece_by_hand():
    # top-1 confidences 0.9 (right), 0.8 (wrong), 0.6 (right), 0.4 (wrong); 2 bins:
    # [0.5, 1]: acc 2/3, conf 0.7667 -> gap 0.1 x 3/4; [0, 0.5): acc 0, conf 0.4 -> 0.4 x 1/4
    probs = torch.tensor([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6],
                          [0.3, 0.3, 0.4]])
    labels = torch.tensor([0, 0, 2, 0])
    assert expected_calibration_error(probs, labels, bins=2) == pytest.approx(0.175)
    # perfectly confident and right: 0; confidence 1.0 lands in the last bin
    assert expected_calibration_error(torch.eye(3), torch.arange(3), bins=10) == 0.0


def test_combine_prob_and_logit():
    logits = torch.tensor([[[2.0, 0.0]], [[0.0, 1.0]]])  # 2 members, 1 image, 2 classes
    probs = logits.softmax(-1)
    torch.testing.assert_close(combine(probs, "prob"), probs.mean(0))
    torch.testing.assert_close(combine(logits, "logit"), torch.tensor([[1.0, 0.5]]).softmax(-1))
    with pytest.raises(ValueError, match="--average"):
        combine(probs, "vote")


def test_gain_curve_first_k_and_mean_over_subsets():
    # one-hot votes: member 0 right on images 0,1; member 1 on 1,2; member 2 on 2 only
    right = torch.tensor([[1, 1, 0], [0, 1, 1], [0, 0, 1]], dtype=torch.bool)
    labels = torch.tensor([0, 0, 0])
    scores = torch.stack([torch.stack([torch.tensor([0.9, 0.1]) if r else
                                       torch.tensor([0.2, 0.8]) for r in row]) for row in right])
    g = gain_curve(scores, labels)
    assert [x["members"] for x in g] == [1, 2, 3]
    assert g[0]["first"] == pytest.approx(2 / 3)
    assert g[0]["mean"] == pytest.approx((2 / 3 + 2 / 3 + 1 / 3) / 3)
    assert g[0]["min"] == pytest.approx(1 / 3) and g[0]["max"] == pytest.approx(2 / 3)
    # a pair is right where one member is (0.9 beats 0.2 on average): {0,1} and {0,2} cover
    # every image -> 1; {1,2} both miss image 0 -> 2/3
    assert g[1]["first"] == pytest.approx(1.0)
    assert g[1]["mean"] == pytest.approx((1 + 1 + 2 / 3) / 3) and g[1]["subsets"] == 3
    assert g[2]["subsets"] == 1


# --- chunked test-time views --------------------------------------------------------------

class Widest(nn.Module):
    """A small asymmetric net that records the largest batch it was given."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4 * 6 * 6, 3)
        self.widest = 0

    def forward(self, x):
        self.widest = max(self.widest, len(x))
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def test_tta_views_subset_is_the_slice_of_all_views():
    x = torch.rand(4, 1, 10, 10)
    full, v = tta_views(x, "10crop")
    for idx in ([0], [3, 4, 5], [9]):
        part, n = tta_views(x, "10crop", views=idx)
        assert n == len(idx)
        assert torch.equal(part, torch.cat([full[i * 4:(i + 1) * 4] for i in idx]))


@pytest.mark.parametrize("average", ["prob", "logit"])
def test_chunked_10crop_equals_unchunked_and_holds_one_chunk(average):
    torch.manual_seed(0)
    models = [Widest().eval(), Widest().eval()]
    x = torch.rand(10, 1, 8, 8)
    loader = [(x[:6], torch.zeros(6)), (x[6:], torch.zeros(4))]
    with torch.no_grad():  # the unchunked reference: every view of a batch at once
        ref = []
        for m in models:
            outs = []
            for xb, _ in loader:
                views, v = tta_views(xb, "10crop")
                s = m(views).view(v, len(xb), -1)
                outs.append((s.softmax(-1) if average == "prob" else s).mean(0))
            ref.append(torch.cat(outs))
        ref = torch.stack(ref)
    for chunk in (1, 3, 10):
        for m in models:
            m.widest = 0
        scores, _ = member_scores(models, loader, "10crop", average, view_chunk=chunk)
        torch.testing.assert_close(scores, ref, rtol=1e-5, atol=1e-6)
        assert max(m.widest for m in models) == 6 * chunk  # a chunk of views, not all 10


# --- evaluate_ensemble on run folders -------------------------------------------------------

DATA = {"num_samples": 48, "channels": 1, "size": 28, "num_classes": 4}


def make_run(path, seed, classes=None):
    torch.manual_seed(seed)
    model = cnnzoo.create_model("lenet5", num_classes=4, in_chans=1)
    config = {"model": "lenet5", "model_kwargs": {}, "num_classes": 4, "in_chans": 1,
              "input_size": [1, 28, 28], "classes": classes or [f"class{i}" for i in range(4)],
              "mean": [0.5], "std": [0.25], "dataset": "synthetic", "dataset_kwargs": DATA}
    path.mkdir(parents=True)
    runs.write_config(path, config)
    runs.save_weights(path / runs.BEST, model.state_dict(), config)
    return model


def test_evaluate_ensemble_members_and_average(tmp_path):
    nets = [make_run(tmp_path / "ens" / f"seed{s}", s) for s in range(3)]
    r = evaluate_ensemble([tmp_path / "ens"], tta=["none", "flip"], device="cpu",
                          out=tmp_path / "report")
    assert [p.rsplit("/", 1)[1] for p in r["runs"]] == ["seed0", "seed1", "seed2"]
    ds = cnnzoo.data.load_dataset("synthetic", "test", **DATA)
    x = (ds.images.float() / 255 - 0.5) / 0.25
    with torch.no_grad():
        probs = torch.stack([m.eval()(x).softmax(1) for m in nets])
    s = r["tta"]["none"]
    for got, p in zip(s["members"], probs):
        assert got["top1"] == pytest.approx((p.argmax(1) == ds.labels).float().mean().item())
    assert s["ensemble"]["top1"] == pytest.approx(
        (probs.mean(0).argmax(1) == ds.labels).float().mean().item())
    assert s["oracle"] >= max(m["top1"] for m in s["members"])
    assert r["tta"]["flip"]["views"] == 2
    saved = json.loads((tmp_path / "report" / "results.json").read_text())
    assert saved["tta"]["none"]["ensemble"] == s["ensemble"]
    text = (tmp_path / "report" / "report.md").read_text()
    assert "Oracle" in text and "The effect of test-time augmentation" in text
    assert (tmp_path / "report" / "gain.png").stat().st_size > 1000


def test_members_trained_on_different_classes_are_one_error_and_nothing_written(tmp_path):
    make_run(tmp_path / "a", 0)
    make_run(tmp_path / "b", 1, classes=["class0", "class1", "dog", "class3"])
    with pytest.raises(CnnzooError, match="do not fit together: class 2 is 'class2'.*'dog'"):
        evaluate_ensemble([tmp_path / "a", tmp_path / "b"], out=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(CnnzooError, match="at least 2 runs"):
        evaluate_ensemble([tmp_path / "a"])


def test_cli_ensemble(tmp_path, capsys):
    for s in range(2):
        make_run(tmp_path / "ens" / f"seed{s}", s)
    out = tmp_path / "rep"
    code = main(["ensemble", str(tmp_path / "ens"), "--tta", "none,10crop", "--device", "cpu",
                 "-o", str(out), "--view-chunk", "5"])
    text = capsys.readouterr().out
    assert code == 0 and "ensemble" in text and "oracle" in text and "tta 10crop" in text
    saved = json.loads((out / "results.json").read_text())
    assert saved["command"].startswith("cnnzoo ") and saved["machine"]
    assert "Wall time" in (out / "report.md").read_text()
    make_run(tmp_path / "odd", 3, classes=["a", "b", "c", "d"])
    code = main(["ensemble", str(tmp_path / "ens"), str(tmp_path / "odd"), "-o",
                 str(tmp_path / "rep2")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "do not fit together" in err
    assert not (tmp_path / "rep2").exists()
    with pytest.raises(SystemExit):
        main(["ensemble", str(tmp_path / "ens"), "--tta", "5crop"])


def test_train_seeds_makes_independent_members_an_ensemble_reads(tmp_path, capsys):
    out = tmp_path / "ens"
    small = tmp_path / "small.json"  # a small synthetic set: the flags cannot size it
    small.write_text(json.dumps({"dataset_kwargs": {"num_samples": 320, "channels": 1,
                                                    "size": 28}}))
    code = main(["train", "lenet5", "--dataset", "synthetic", "--config", str(small),
                 "--seeds", "0,1", "--epochs", "1", "--batch-size", "64", "--no-monitor",
                 "--device", "cpu", "--out", str(out)])
    assert code == 0 and "members:        2" in capsys.readouterr().out
    a, b = (runs.read_weights(out / f"seed{s}" / runs.BEST) for s in (0, 1))
    assert not torch.equal(a["c1.weight"], b["c1.weight"]), "each member has its own seed"
    assert [runs.read_config(out / f"seed{s}")["train"]["seed"] for s in (0, 1)] == [0, 1]
    r = evaluate_ensemble([out], device="cpu")
    assert [p.rsplit("/", 1)[1] for p in r["runs"]] == ["seed0", "seed1"]
    assert r["tta"]["none"]["mean_disagreement"] > 0  # different members, different answers
    with pytest.raises(SystemExit) as e:
        main(["train", "lenet5", "--seeds", "0,0"])
    assert e.value.code == 2 and "distinct integers" in capsys.readouterr().err
    assert main(["train", "lenet5", "--seeds", "0,1", "--seed", "3", "--out",
                 str(tmp_path / "x")]) == 2
    assert "give --seed or --seeds" in capsys.readouterr().err and not (tmp_path / "x").exists()
