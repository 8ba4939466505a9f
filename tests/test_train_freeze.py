"""Training with a frozen body, parameter groups with their own lr_mult, a caller's model
and loss: what is frozen stays bit-identical (BatchNorm statistics too), and resume keeps
each group's own hyper-parameters."""

import pytest
import torch
import torch.nn as nn

from cnnzoo.errors import CnnzooError
from cnnzoo.models.registry import create_model
from cnnzoo.runs import load_run
from cnnzoo.train import TrainConfig, freeze, frozen_bn_eval, param_groups, train
from cnnzoo.train.checkpoint import load_checkpoint

DATA = {"num_samples": 120, "channels": 3, "size": 32}  # 108 train images: 3 steps of 32


def cfg(out, **kw):
    base = dict(model="resnet20", dataset="synthetic", dataset_kwargs=DATA, epochs=1,
                batch_size=32, out=str(out), optimizer="sgd", lr=0.05, schedule="constant",
                augment="", threads=1, progress=False, monitor=False)
    return TrainConfig(**(base | kw))


def resnet20(seed=0):
    torch.manual_seed(seed)
    return create_model("resnet20", num_classes=10, in_chans=3)


def test_freeze_up_to_a_module_takes_it_and_everything_before():
    m = resnet20()
    names = freeze(m, "layer1.1")
    order = [n for n, _ in m.named_parameters()]
    frozen = [n for n, p in m.named_parameters() if not p.requires_grad]
    assert frozen == names == order[:len(frozen)]  # a prefix, in module order
    assert "conv1.weight" in frozen and "layer1.1.bn2.bias" in frozen
    assert not any(n.startswith(("layer1.2", "layer2", "fc")) for n in frozen)
    # a frozen BatchNorm stays in eval mode through model.train(); the others do not
    m.train()
    frozen_bn_eval(m)
    assert not m.bn1.training and not m.get_submodule("layer1.1.bn2").training
    assert m.get_submodule("layer1.2.bn1").training


def test_freeze_everything_but_the_classifier_and_param_groups():
    m = resnet20()
    freeze(m)
    assert [n for n, p in m.named_parameters() if p.requires_grad] == ["fc.weight", "fc.bias"]
    groups = param_groups(m, body_lr_mult=0.1)
    assert [g["name"] for g in groups] == ["head"]  # the body is frozen: no group for it
    m2 = resnet20()
    freeze(m2, "layer2")
    body, head = param_groups(m2, 0.1, head_weight_decay=0.0)
    assert body["lr_mult"] == 0.1 and head["lr_mult"] == 1.0 and head["weight_decay"] == 0.0
    assert "weight_decay" not in body  # the run's
    assert {id(p) for p in head["params"]} == {id(m2.fc.weight), id(m2.fc.bias)}
    assert all(p.requires_grad for p in body["params"]) and len(body["params"]) > 10


def test_unknown_module_names_the_closest():
    with pytest.raises(CnnzooError, match=r"no module 'layer2.9'.*closest: .*layer2\.") as e:
        freeze(resnet20(), "layer2.9")
    assert "\n" not in str(e.value)
    with pytest.raises(CnnzooError, match="its modules: conv1, bn1"):
        freeze(resnet20(), "zzzz")


def test_one_epoch_with_a_frozen_body_leaves_it_bit_identical(tmp_path):
    m = resnet20()
    freeze(m, "layer2")
    before = {k: v.clone() for k, v in m.state_dict().items()}
    res = train(cfg(tmp_path / "frozen"), model=m)
    assert res.step == 3
    after, _ = load_run(tmp_path / "frozen", which="last")
    after = after.state_dict()
    frozen = [k for k in before if k.startswith(("conv1", "bn1", "layer1", "layer2"))]
    free = [k for k in before if k.startswith(("layer3", "fc"))]
    # parameters and buffers: BN running_mean/var and num_batches_tracked never moved
    assert any(k.endswith("running_var") for k in frozen)
    assert any(k.endswith("num_batches_tracked") for k in frozen)
    for k in frozen:
        assert torch.equal(before[k], after[k]), k
    changed = [k for k in free if not torch.equal(before[k], after[k])]
    assert "fc.weight" in changed and "layer3.2.bn2.running_mean" in changed
    assert "layer3.0.bn1.num_batches_tracked" in changed  # the free BN counted its steps
    assert len(changed) == len(free)


def test_a_frozen_model_with_nothing_left_to_train_is_refused(tmp_path):
    m = resnet20()
    for p in m.parameters():
        p.requires_grad_(False)
    with pytest.raises(CnnzooError, match="every parameter is frozen"):
        train(cfg(tmp_path / "all"), model=m)
    with pytest.raises(CnnzooError, match="lr_mult"):
        train(cfg(tmp_path / "lr"), model=resnet20(),
              param_groups=[{"params": resnet20().parameters(), "lr": 0.1}])


def test_a_model_the_run_folder_cannot_rebuild_is_refused(tmp_path):
    deeper = create_model("resnet32", num_classes=10, in_chans=3)
    with pytest.raises(CnnzooError, match="first difference: layer1.3"):
        train(cfg(tmp_path / "other"), model=deeper)  # config says resnet20
    assert not (tmp_path / "other").exists()


def test_groups_lr_mult_scales_the_schedule(tmp_path):
    m = resnet20()
    groups = param_groups(m, body_lr_mult=0.0, head_lr_mult=2.0)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    train(cfg(tmp_path / "mult"), model=m, param_groups=groups)
    after = load_run(tmp_path / "mult", which="last")[0].state_dict()
    # lr_mult 0: the body's weights keep their values (its BN statistics still update)
    assert torch.equal(before["layer2.0.conv1.weight"], after["layer2.0.conv1.weight"])
    assert not torch.equal(before["fc.weight"], after["fc.weight"])
    _, _, state = load_checkpoint(tmp_path / "mult")
    lrs = [(g["name"], g["lr"]) for g in state["optimizer"]["param_groups"]]
    assert lrs == [("body", 0.0), ("head", pytest.approx(0.1))]


def test_resume_keeps_each_groups_own_hyper_parameters(tmp_path):
    # two groups with different lr_mult and weight decay: resumed after epoch 1 it must
    # end bit-identical to the straight run (the old resume gave every group group 0's)
    def run(out, epochs, resume=False):
        m = resnet20()
        groups = param_groups(m, body_lr_mult=0.5, head_lr_mult=2.0, head_weight_decay=0.0)
        return train(cfg(out, epochs=epochs, resume=resume, weight_decay=5e-3,
                         momentum=0.9), model=m, param_groups=groups)

    run(tmp_path / "straight", 2)
    run(tmp_path / "split", 1)
    run(tmp_path / "split", 2, resume=True)
    a = load_run(tmp_path / "straight", which="last")[0].state_dict()
    b = load_run(tmp_path / "split", which="last")[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    _, _, state = load_checkpoint(tmp_path / "split")
    groups = state["optimizer"]["param_groups"]
    assert [(g["name"], g["lr_mult"], g["weight_decay"]) for g in groups] == [
        ("body", 0.5, 5e-3), ("head", 2.0, 0.0)]
    assert groups[1]["lr"] == pytest.approx(4 * groups[0]["lr"])


def test_a_callers_loss_is_used(tmp_path):
    calls = []

    def loss_fn(out, y):
        calls.append(len(y))
        return (out ** 2).mean()  # pulls the logits to zero, whatever the labels

    m = resnet20()
    x = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        start = m.eval()(x).abs().mean()
    train(cfg(tmp_path / "loss", epochs=2), model=m.train(), loss_fn=loss_fn)
    assert calls == [32] * 6
    model, _ = load_run(tmp_path / "loss", which="last")
    with torch.no_grad():
        assert model(x).abs().mean() < start / 3


def test_frozen_bn_eval_ignores_bn_without_parameters():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2, affine=False),
                        nn.BatchNorm2d(2))
    for p in net[2].parameters():
        p.requires_grad_(False)
    net.train()
    assert frozen_bn_eval(net) == 1
    assert net[1].training and not net[2].training
