"""cnnzoo.runs: the run folder's schema, its readers, and loading several runs at once."""

import json

import pytest
import torch

from cnnzoo import runs
from cnnzoo.errors import CheckpointError, CnnzooError
from cnnzoo.models.registry import create_model


def config(**kw):
    base = {"model": "lenet5", "model_kwargs": {}, "num_classes": 3, "in_chans": 1,
            "input_size": [1, 28, 28], "classes": ["a", "b", "c"], "mean": [0.5],
            "std": [0.25], "dataset": "synthetic", "train": {"seed": 0}}
    return base | kw


def make_run(path, seed=0, best=True, **kw):
    cfg = config(**kw)
    path.mkdir(parents=True)
    runs.write_config(path, cfg)
    torch.manual_seed(seed)
    model = create_model(cfg["model"], num_classes=cfg["num_classes"], in_chans=cfg["in_chans"])
    runs.save_weights(path / runs.WEIGHTS, model.state_dict(), cfg, step=3, epoch=1)
    if best:
        runs.save_weights(path / runs.BEST, model.state_dict(), cfg, step=3, epoch=1)
    return model.eval()


@pytest.mark.parametrize("change, message", [
    ({"num_classes": 0}, "'num_classes' must be a positive integer, got 0"),
    ({"input_size": [3, 28, 28]}, r"'input_size' must be \[C, H, W\] with C = in_chans 1"),
    ({"classes": ["a", "b"]}, "'classes' must be 3 names"),
    ({"mean": [0.5, 0.5]}, "'mean' must be 1 numbers"),
    ({"train": []}, "'train' must be an object"),
])
def test_a_broken_config_is_one_line_naming_the_file(tmp_path, change, message):
    (tmp_path / "config.json").write_text(json.dumps(config(**change)))
    with pytest.raises(CheckpointError, match=f"config.json: {message}") as e:
        runs.read_config(tmp_path)
    assert "\n" not in str(e.value)
    missing = {k: v for k, v in config().items() if k != "std"}
    (tmp_path / "config.json").write_text(json.dumps(missing))
    with pytest.raises(CheckpointError, match="missing key.s. std"):
        runs.read_config(tmp_path)
    with pytest.raises(CheckpointError, match=r"config.json: not found \(is .* a cnnzoo run"):
        runs.read_config(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="run config 'classes'"):  # the writer checks too
        runs.write_config(tmp_path, config(classes=["a"]))


def test_weights_files_carry_the_config_and_load_back(tmp_path):
    model = make_run(tmp_path / "r", best=False)
    assert runs.weights_config(tmp_path / "r" / runs.WEIGHTS) == config()
    loaded, cfg = runs.load_run(tmp_path / "r")  # no best.safetensors: the last weights
    assert cfg == config() and not loaded.training
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())
    with pytest.raises(CnnzooError, match="which must be 'best' or 'last'"):
        runs.load_run(tmp_path / "r", which="first")


def test_load_runs_expands_a_folder_of_members_in_order(tmp_path):
    for seed in (1, 0, 2):
        make_run(tmp_path / "ens" / f"seed{seed}", seed=seed)
    (tmp_path / "ens" / "notes").mkdir()  # not a run: ignored
    make_run(tmp_path / "single", seed=7)
    loaded = runs.load_runs([tmp_path / "ens", tmp_path / "single"])
    assert [p.name for _, _, p in loaded] == ["seed0", "seed1", "seed2", "single"]
    w = [m.state_dict()["c1.weight"] for m, _, _ in loaded]
    assert not torch.equal(w[0], w[1])  # each member its own weights
    torch.manual_seed(1)
    assert torch.equal(w[1], create_model("lenet5", num_classes=3, in_chans=1)
                       .state_dict()["c1.weight"])
    with pytest.raises(CheckpointError, match=r"notes: not a cnnzoo run folder \(no config"):
        runs.load_runs([tmp_path / "ens" / "notes"])
    with pytest.raises(CheckpointError, match="nope: not a cnnzoo run folder .no such folder"):
        runs.load_runs(tmp_path / "nope")


@pytest.mark.parametrize("change, message", [
    ({"num_classes": 2, "classes": ["a", "b"]}, "num_classes is 3 in the first and 2"),
    ({"classes": ["a", "x", "c"]}, "class 1 is 'b' in the first and 'x' in the second"),
    ({"model": "lenet5", "input_size": [1, 32, 32]}, r"input_size is \[1, 28, 28\] in the"),
    ({"in_chans": 3, "input_size": [3, 28, 28], "mean": [0.5] * 3, "std": [0.2] * 3},
     "in_chans is 1 in the first and 3"),
])
def test_members_that_disagree_are_refused_naming_both(tmp_path, change, message):
    make_run(tmp_path / "a")
    make_run(tmp_path / "b", **change)
    with pytest.raises(CnnzooError, match=message) as e:
        runs.load_runs([tmp_path / "a", tmp_path / "b"])
    assert f"runs {tmp_path / 'a'} and {tmp_path / 'b'}" in str(e.value)
    assert len(runs.load_runs([tmp_path / "a", tmp_path / "b"], check=False)) == 2


def test_metrics_log_is_strict_json_and_reads_back(tmp_path):
    log = runs.MetricsLog(tmp_path / runs.METRICS)
    log.write({"kind": "step", "step": 1, "loss": float("nan")})
    log.write({"kind": "step", "step": 2, "loss": 1.5, "ratio": {"c1": float("inf")}})
    log.close()
    assert runs.read_metrics(tmp_path) == [  # a run folder or the file itself
        {"kind": "step", "step": 1, "loss": None},
        {"kind": "step", "step": 2, "loss": 1.5, "ratio": {"c1": None}}]
    runs.truncate_metrics(tmp_path / runs.METRICS, 1)
    assert [r["step"] for r in runs.read_metrics(tmp_path / runs.METRICS)] == [1]
