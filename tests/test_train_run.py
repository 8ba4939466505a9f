"""Training end to end on tiny synthetic data: run folder, load_run, exact resume, faults."""

import json

import pytest
import torch
from safetensors.torch import load_file

from cnnzoo.cli import main
from cnnzoo.errors import CheckpointError, CnnzooError
from cnnzoo.train import TrainConfig, TrainingDiverged, load_run, train

DATA = {"num_samples": 320, "channels": 1, "size": 28}


def tiny(out, **kw):
    base = dict(model="lenet5", dataset="synthetic", dataset_kwargs=DATA, epochs=2,
                batch_size=32, out=str(out), augment="flip", log_every=1, threads=1,
                progress=False)
    return TrainConfig(**(base | kw))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "a"
    return train(tiny(out, eval_test=True)), out


def test_run_folder_is_complete(run):
    res, out = run
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "weights.safetensors", "best.safetensors", "metrics.jsonl",
            "trainer_state.json", "trainer_state.safetensors", "filters"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    assert sorted(p.name for p in (out / "filters").iterdir()) == ["epoch_001.png",
                                                                   "epoch_002.png"]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"] == "lenet5" and cfg["input_size"] == [1, 28, 28]
    assert cfg["num_classes"] == 10 and len(cfg["mean"]) == 1 and cfg["train"]["lr"] == 3e-3
    assert cfg["train"]["optimizer"] == "adamw"  # the lenet recipe, resolved and saved
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["epoch"] == 2 and state["step"] == res.step == 2 * (288 // 32)
    assert res.stopped == "done" and 0 <= res.test_acc <= 1 and res.best_val_acc > 0.5


def test_metrics_records(run):
    _, out = run
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in recs if r["kind"] == "step"]
    epochs = [r for r in recs if r["kind"] == "epoch"]
    assert [r["step"] for r in steps] == list(range(1, 19))
    assert {"loss", "lr", "time"} <= set(steps[0])
    e = epochs[-1]
    for k in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "time", "images_per_s"):
        assert isinstance(e[k], float), k
    assert set(e["update_ratio"]) == {"c1.weight", "c3.weight", "c5.weight", "f6.weight",
                                      "output.weight"}
    assert all(v > 0 for v in e["update_ratio"].values())
    assert "act1" in e["act_var"] and "act1" in e["dead_fraction"] and "c1.weight" in e[
        "grad_norm"]
    assert recs[-1]["kind"] == "test"


def test_load_run_rebuilds_the_trained_model(run):
    _, out = run
    model, cfg = load_run(out, which="last")
    sd = load_file(str(out / "weights.safetensors"))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in sd.items())
    assert not model.training and cfg["dataset"] == "synthetic"
    with pytest.raises(CheckpointError, match="config.json: not found"):
        load_run(out / "nope")


def weights(out):
    return load_file(str(out / "weights.safetensors"))


def test_resume_from_epoch_checkpoint_is_exact(tmp_path):
    # a schedule that does not depend on the total epochs: 1 epoch, then extended to 2
    sched = dict(schedule="step", milestones=[1], optimizer="sgd", lr=0.05)
    straight = tmp_path / "a"
    train(tiny(straight, **sched))
    train(tiny(tmp_path / "b", epochs=1, **sched))
    res = train(tiny(tmp_path / "b", epochs=2, resume=True))
    assert res.epochs_done == 2
    a, b = weights(straight), weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)
    steps = [json.loads(x)["step"] for x in (tmp_path / "b" / "metrics.jsonl").read_text()
             .splitlines()]
    assert steps == sorted(steps)  # no duplicated records after the resume


def test_resume_mid_epoch_is_exact(run, tmp_path):
    _, straight = run
    res = train(tiny(tmp_path / "c", time_limit=1e-9))  # stops after one step, with a checkpoint
    assert res.stopped == "time_limit" and res.step == 1
    res = train(tiny(tmp_path / "c", resume=True))
    a, b = weights(straight), weights(tmp_path / "c")
    assert res.step == 18 and all(torch.equal(a[k], b[k]) for k in a)


def test_existing_run_needs_resume(run):
    _, out = run
    with pytest.raises(CheckpointError, match="already holds a run; pass --resume"):
        train(tiny(out))


def test_nan_loss_stops_naming_the_step_and_keeps_the_checkpoint(tmp_path):
    out = tmp_path / "nan"
    train(tiny(out, epochs=1))
    before = weights(out)
    with pytest.raises(TrainingDiverged, match=r"loss is (nan|inf) at step \d+ .*checkpoint "
                                               r"\(step 9\) is kept"):
        train(tiny(out, epochs=3, resume=True, lr=1e30, schedule="constant"))
    after = weights(out)  # the run's weights are still the last good ones
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_nan_fresh_run(tmp_path):
    out = tmp_path / "nan2"
    with pytest.raises(TrainingDiverged, match=r"at step \d+ \(epoch 1, batch \d+/9.*No "
                                               "checkpoint was saved yet"):
        train(tiny(out, epochs=5, lr=1e30, optimizer="sgd", schedule="constant"))
    assert not (out / "weights.safetensors").exists()


def test_unwritable_out_fails_before_training(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(CheckpointError, match=r"--out .*file/run: cannot write there"):
        train(tiny(f / "run"))
    assert main(["train", "lenet5", "--dataset", "synthetic", "--out", str(f / "r")]) == 2
    assert "cnnzoo train: error: --out" in capsys.readouterr().err


def test_full_disk_fails_before_training(tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(1, 1, 1000))
    with pytest.raises(CheckpointError, match="MiB free on its disk"):
        train(tiny(tmp_path / "full"))
    assert not (tmp_path / "full" / "metrics.jsonl").exists()


def test_bad_resume_point_is_a_checkpoint_error(tmp_path):
    out = tmp_path / "bad"
    train(tiny(out, epochs=1))
    (out / "trainer_state.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="trainer_state.safetensors: cannot read"):
        train(tiny(out, resume=True))
    with pytest.raises(CnnzooError, match="trained model 'lenet5', not 'lenet5_1998'"):
        train(tiny(out, model="lenet5_1998", resume=True))
    with pytest.raises(CnnzooError, match="trained optimizer 'adamw', not 'sgd'"):
        train(tiny(out, optimizer="sgd", resume=True))
