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
    assert cfg["num_classes"] == 10 and len(cfg["mean"]) == 1 and cfg["train"]["lr"] == 1e-2
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
    assert_no_duplicate_records(tmp_path / "b")


def records(out):
    def strict(c):
        raise ValueError(f"not JSON: {c}")

    return [json.loads(x, parse_constant=strict)
            for x in (out / "metrics.jsonl").read_text().splitlines()]


def assert_no_duplicate_records(out):
    for kind in ("step", "epoch"):
        steps = [r["step"] for r in records(out) if r["kind"] == kind]
        assert steps and all(a < b for a, b in zip(steps, steps[1:])), (kind, steps)


def test_resume_before_the_first_checkpoint_starts_the_metrics_afresh(tmp_path):
    out = tmp_path / "k"
    train(tiny(out, epochs=1))
    for name in ("trainer_state.safetensors", "trainer_state.json", "weights.safetensors",
                 "best.safetensors"):  # as if killed before its first checkpoint
        (out / name).unlink()
    res = train(tiny(out, epochs=1, resume=True))
    assert res.step == 9
    assert_no_duplicate_records(out)
    assert [r["step"] for r in records(out) if r["kind"] == "step"] == list(range(1, 10))


def test_resume_mid_epoch_is_exact(run, tmp_path):
    _, straight = run
    res = train(tiny(tmp_path / "c", time_limit=1e-9))  # stops after one step, with a checkpoint
    assert res.stopped == "time_limit" and res.step == 1
    res = train(tiny(tmp_path / "c", resume=True))
    a, b = weights(straight), weights(tmp_path / "c")
    assert res.step == 18 and all(torch.equal(a[k], b[k]) for k in a)


def test_a_time_limit_is_a_budget_eval_test_still_reports(tmp_path):
    out = tmp_path / "budget"
    assert train(tiny(out, epochs=1)).best_epoch == 1
    res = train(tiny(out, epochs=3, resume=True, time_limit=1e-9, eval_test=True))
    assert res.stopped == "time_limit" and res.step == 10
    assert res.test_acc is not None and 0 <= res.test_acc <= 1
    assert records(out)[-1] == {"kind": "test", "step": 10, "test_acc": res.test_acc}
    # stopped before any epoch ended: nothing to test
    res = train(tiny(tmp_path / "none", time_limit=1e-9, eval_test=True))
    assert res.stopped == "time_limit" and res.test_acc is None


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


def test_weights_that_break_at_an_epoch_end_are_never_saved(tmp_path):
    # one batch per epoch: the update that breaks the model is the epoch's last, so only the
    # validation pass can see it
    out = tmp_path / "nanval"
    with pytest.raises(TrainingDiverged, match=r"validation loss is (nan|inf) after step 1 "
                                               r"\(end of epoch 1.*no checkpoint was saved"):
        train(tiny(out, batch_size=288, lr=1e38, optimizer="sgd", schedule="constant"))
    assert not (out / "weights.safetensors").exists()
    assert not (out / "best.safetensors").exists()
    records(out)  # strict JSON even though the loss blew up


def test_weights_files_carry_the_run_description(run):
    from safetensors import safe_open

    from cnnzoo.data import load_dataset

    _, out = run
    train_split, _ = load_dataset("synthetic", "train", **DATA).split(0.1, seed=0)
    for name in ("weights.safetensors", "best.safetensors"):
        with safe_open(str(out / name), "pt") as f:
            meta = json.loads(f.metadata()["cnnzoo"])
        assert meta == json.loads((out / "config.json").read_text())
        assert meta["mean"] == pytest.approx(train_split.channel_stats()[0])
        assert meta["std"] == pytest.approx(train_split.channel_stats()[1])
        assert meta["model"] == "lenet5" and len(meta["classes"]) == 10


def test_resume_refuses_another_seed(run):
    _, out = run
    with pytest.raises(CheckpointError, match="trained seed 0, not 3"):
        train(tiny(out, resume=True, seed=3))


def test_plateau_divides_the_lr_when_val_accuracy_stalls(tmp_path):
    # lr so small that nothing changes: every epoch is a plateau; patience 1
    out = tmp_path / "plateau"
    train(tiny(out, epochs=5, optimizer="sgd", lr=1e-12, schedule="plateau", patience=1,
               gamma=0.1, augment=""))
    lrs = [r["lr"] for r in records(out) if r["kind"] == "epoch"]
    assert [lr / 1e-12 for lr in lrs] == pytest.approx([1, 1, 1, 0.1, 0.1])


def test_checkpoint_every_saves_mid_epoch(tmp_path, monkeypatch):
    from cnnzoo.train import checkpoint

    saved, real = [], checkpoint.save_checkpoint
    monkeypatch.setattr(checkpoint, "save_checkpoint",
                        lambda out, sd, opt, state, **kw: (saved.append(state["step"]),
                                                           real(out, sd, opt, state, **kw)))
    train(tiny(tmp_path / "every", checkpoint_every=4))
    assert saved == [4, 8, 9, 12, 16, 18]  # every 4 steps, and each epoch's end (9 steps)


def test_progress_bar_on_a_tty_one_line_per_epoch_otherwise(tmp_path, capsys):
    train(tiny(tmp_path / "quiet"))
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("epoch ")]
    assert [x.split()[1] for x in lines] == ["1/2", "2/2"] and "\r" not in err
    assert "img/s" in lines[0] and "val" in lines[0]
    train(tiny(tmp_path / "bar", progress=True))
    err = capsys.readouterr().err
    assert "\r" in err and "img_s=" in err and "loss=" in err and "batch/s" in err


def test_amp_runs_and_warns_where_bf16_is_emulated(tmp_path, capsys):
    res = train(tiny(tmp_path / "amp", amp=True, epochs=1))
    assert res.stopped == "done" and res.best_val_acc >= 0
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert ("without native bfloat16" in capsys.readouterr().err) == (not native)


def test_pick_device(monkeypatch):
    from cnnzoo.utils.device import pick_device

    assert pick_device("cpu").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device().type == "cpu" and pick_device("auto").type == "cpu"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device().type == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device().type == "cuda"


@pytest.mark.heavy  # Inductor's C++ build of forward and backward: ~100 s on 2 cores
def test_compile_trains_the_same_model(tmp_path):
    a = train(tiny(tmp_path / "eager", epochs=1, augment=""))
    b = train(tiny(tmp_path / "compiled", epochs=1, augment="", compile=True))
    assert b.step == a.step
    wa, wb = weights(tmp_path / "eager"), weights(tmp_path / "compiled")
    assert all(torch.allclose(wa[k], wb[k], rtol=1e-3, atol=1e-4) for k in wa)


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


def test_a_model_that_cannot_take_the_images_fails_before_training(tmp_path):
    from cnnzoo.errors import ShapeError

    out = tmp_path / "toosmall"
    with pytest.raises(ShapeError, match="does not fit|too small"):
        train(tiny(out, model="alexnet", model_kwargs={"small_input": False}))
    assert not (out / "config.json").exists()


@pytest.mark.parametrize("cores, prefetch", [(1, False), (4, True)])
def test_prefetch_thread_only_where_a_core_is_spare(tmp_path, monkeypatch, cores, prefetch):
    # threads=1: with one core the step has it all (a prefetch thread would only take from
    # it); with spare cores the thread prepares the next batches beside the step
    from cnnzoo.train import build_parts

    monkeypatch.setattr("os.cpu_count", lambda: cores)
    torch.set_num_threads(1)
    parts = build_parts(tiny(tmp_path / "p"), device=torch.device("cpu"))
    assert parts.train_loader.prefetch is prefetch and parts.val_loader.prefetch is prefetch
    assert not (tmp_path / "p").exists()  # building the parts writes nothing


def test_no_host_sync_per_step(tmp_path, monkeypatch):
    # every way a tensor's value reaches Python: their count must not grow with the steps
    # (reading the loss each step would stall a GPU's queue every step)
    reads = []
    for name in ("item", "tolist", "__float__", "__int__", "__bool__"):
        real = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda self, *a, _r=real, **k: (
            reads.append(1), _r(self, *a, **k))[1])

    def count(batch, log_every):
        reads.clear()
        res = train(tiny(tmp_path / f"{batch}_{log_every}", epochs=1, batch_size=batch,
                         optimizer="sgd", augment="", monitor=False, log_every=log_every))
        return res.step, len(reads)

    (s1, n1), (s2, n2) = count(32, 1000), count(16, 1000)
    assert (s1, s2) == (9, 18) and n1 == n2 < 9
    _, n3 = count(16, 6)  # a step record every 6 steps: reads at steps 6, 12 and 18 (the
    assert n3 == n2 + 2   # last of them is the one the epoch's end makes anyway)
