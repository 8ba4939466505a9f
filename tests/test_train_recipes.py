"""Recipes from the lectures, config precedence, schedules and builder knobs."""

import json
import math

import pytest

from cnnzoo.cli import build_parser
from cnnzoo.errors import CnnzooError
from cnnzoo.models.registry import list_models, model_info
from cnnzoo.train import RECIPES, TrainConfig, read_config_file, recipe_for
from cnnzoo.train.trainer import lr_factor, model_kwargs


def test_lecture_recipes():
    a = recipe_for("alexnet", small=False)  # lectures: "AlexNet details"
    assert (a["optimizer"], a["momentum"], a["lr"], a["schedule"], a["gamma"]) == (
        "sgd", 0.9, 1e-2, "plateau", 0.1)
    assert (a["weight_decay"], a["dropout"], a["batch_size"]) == (5e-4, 0.5, 128)
    v = recipe_for("vgg", small=False)
    assert (v["optimizer"], v["momentum"], v["lr"], v["schedule"]) == ("sgd", 0.9, 1e-2, "plateau")
    r = recipe_for("resnet", small=False)  # "training ResNet in practice"
    assert (r["optimizer"], r["momentum"], r["lr"], r["schedule"], r["gamma"]) == (
        "sgd", 0.9, 0.1, "plateau", 0.1)
    assert (r["batch_size"], r["weight_decay"], r["dropout"]) == (256, 1e-4, 0.0)
    assert recipe_for("googlenet", small=False)["aux_weight"] == 0.3
    i = recipe_for("inception_v3", small=False)
    assert i["optimizer"] == "rmsprop" and i["label_smoothing"] > 0


def test_every_zoo_recipe_key_has_both_variants():
    keys = {model_info(n).recipe for n in list_models()}
    assert keys <= set(RECIPES)
    for k in ("lenet", "alexnet", "vgg", "resnet", "resnet_cifar", "googlenet", "inception_v3",
              "densenet", "squeezenet", "fractalnet", "nin", "default"):
        small, big = recipe_for(k, True), recipe_for(k, False)
        assert small["epochs"] <= big["epochs"] and small["lr"] > 0
        TrainConfig(model="x", **{f: small[f] for f in small}).check()


def test_resolved_fills_only_unset_fields():
    c = TrainConfig(model="alexnet", lr=0.5).resolved("alexnet", small=True)
    assert c.lr == 0.5 and c.momentum == 0.9 and c.augment == "flip,crop:4" and c.epochs == 30


def test_bad_values_name_the_flag():
    with pytest.raises(CnnzooError, match="--optimizer: must be one of sgd, adamw, rmsprop"):
        TrainConfig(model="lenet5", optimizer="adam").check()
    with pytest.raises(CnnzooError, match="--lr: must be > 0"):
        TrainConfig(model="lenet5", lr=-1).check()
    with pytest.raises(CnnzooError, match="unknown key.*learning_rate"):
        TrainConfig.from_dict({"model": "lenet5", "learning_rate": 1})


def test_config_file_then_flags_override(tmp_path, monkeypatch):
    f = tmp_path / "run.json"
    f.write_text(json.dumps({"model": "lenet5", "lr": 0.2, "epochs": 7, "batch-size": 64}))
    assert read_config_file(f) == {"model": "lenet5", "lr": 0.2, "epochs": 7, "batch_size": 64}
    seen = {}
    monkeypatch.setattr("cnnzoo.train.train", lambda cfg: seen.setdefault("cfg", cfg) and 1/0)
    args = build_parser().parse_args(["train", "--config", str(f), "--lr", "0.01"])
    with pytest.raises(ZeroDivisionError):
        args.func(args)
    cfg = seen["cfg"]
    assert (cfg.model, cfg.lr, cfg.epochs, cfg.batch_size, cfg.optimizer) == (
        "lenet5", 0.01, 7, 64, None)  # optimizer: left to the recipe
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(CnnzooError, match="bad.json: not valid JSON"):
        read_config_file(tmp_path / "bad.json")


def test_knob_flags_become_builder_options(tmp_path, monkeypatch):
    f = tmp_path / "run.yaml"
    f.write_text("model: wrn\nmodel_kwargs: {depth: 16, dropout: 0.3}\n")
    seen = {}
    monkeypatch.setattr("cnnzoo.train.train", lambda cfg: seen.setdefault("cfg", cfg) and 1/0)
    args = build_parser().parse_args(["train", "--config", str(f), "--knob", "depth=10",
                                      "--knob", "widen_factor=2"])
    with pytest.raises(ZeroDivisionError):
        args.func(args)
    assert seen["cfg"].model_kwargs == {"depth": 10, "dropout": 0.3, "widen_factor": 2}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "wrn", "--knob", "depth"])


def test_yaml_config_file(tmp_path):
    f = tmp_path / "run.yaml"
    f.write_text("model: lenet5\nlr: 0.3\nbatch-size: 64\naugment: flip,crop:4\n")
    assert read_config_file(f) == {"model": "lenet5", "lr": 0.3, "batch_size": 64,
                                   "augment": "flip,crop:4"}
    (tmp_path / "bad.yaml").write_text("model: [lenet5\n")
    with pytest.raises(CnnzooError, match="bad.yaml: not valid YAML"):
        read_config_file(tmp_path / "bad.yaml")
    (tmp_path / "list.yml").write_text("- lenet5\n")
    with pytest.raises(CnnzooError, match="list.yml: must hold a mapping"):
        read_config_file(tmp_path / "list.yml")


def cfg(**kw):
    base = dict(model="x", epochs=10, schedule="constant", gamma=0.1, step_size=3,
                milestones=None, warmup=0)
    return TrainConfig(**(base | kw))


def test_schedules():
    assert lr_factor(cfg(schedule="step"), 2.9, 1) == 1 and lr_factor(cfg(schedule="step"),
                                                                        3.0, 1) == 0.1
    st = cfg(schedule="step", milestones=[5, 8])
    assert [round(lr_factor(st, e, 1), 6) for e in (4.9, 5, 8)] == [1, 0.1, 0.01]
    assert lr_factor(cfg(schedule="plateau"), 5, 0.01) == 0.01
    cos = cfg(schedule="cosine")
    assert lr_factor(cos, 0, 1) == 1 and lr_factor(cos, 5, 1) == pytest.approx(0.5)
    oc = cfg(schedule="onecycle")
    assert lr_factor(oc, 0, 1) == pytest.approx(1 / 25) and lr_factor(oc, 3, 1) == 1
    assert lr_factor(oc, 10, 1) == pytest.approx(1 / 25e4)
    w = cfg(warmup=2)
    assert lr_factor(w, 1, 1) == 0.5 and lr_factor(w, 2, 1) == 1
    assert math.isclose(lr_factor(cfg(schedule="linear"), 7.5, 1), 0.25)


def test_builder_knobs_from_recipe_and_data():
    alex = TrainConfig(model="alexnet").resolved("alexnet", small=True)
    assert model_kwargs(alex, False, model_info("alexnet"), (32, 32)) == {
        "small_input": True, "dropout": 0.5}
    g = TrainConfig(model="googlenet").resolved("googlenet", small=True)
    kw = model_kwargs(g, False, model_info("googlenet"), (32, 32))
    assert kw["aux_logits"] is True and kw["small_input"] is True
    le = TrainConfig(model="lenet5", dropout=0.3).resolved("lenet", small=True)
    with pytest.raises(CnnzooError, match="--dropout: lenet5 has no dropout layer"):
        model_kwargs(le, True, model_info("lenet5"), (28, 28))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["alexnet", "vgg11", "resnet18", "googlenet", "nin"])
def test_default_recipes_start_learning_without_diverging(tmp_path, name):
    # The lectures' recipes at their own lr (AlexNet's diverged at step 9 when the classifier
    # was initialised with fan_out); a few real steps on small RGB images.
    from cnnzoo.train import train

    res = train(TrainConfig(model=name, dataset="synthetic", epochs=1, out=str(tmp_path / name),
                            dataset_kwargs={"num_samples": 512, "channels": 3, "size": 32},
                            threads=2, progress=False, monitor=False, log_every=1))
    assert res.step == 3 and math.isfinite(res.best_val_acc)  # 460 images / batch 128
    recs = [json.loads(x) for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in recs if r["kind"] == "step"]
    assert len(losses) == 3 and all(math.isfinite(v) and v < 5 for v in losses), losses
