"""The lectures' monitoring rules: update/weight ratio, vanishing and dead activations."""

import torch
import torch.nn as nn

from cnnzoo.train.monitor import UpdateRatio, activation_stats, health_warnings


def test_update_ratio_is_the_actual_change_over_one_step():
    lin = nn.Linear(4, 4, bias=False)
    nn.init.constant_(lin.weight, 2.0)
    opt = torch.optim.SGD(lin.parameters(), lr=0.01)
    r = UpdateRatio(lin)
    r.snapshot()
    lin.weight.grad = torch.ones(4, 4)
    assert r.grad_norms() == {"weight": 4.0}
    opt.step()
    assert abs(r.ratios()["weight"] - 0.01 / 2.0) < 1e-7  # ||lr * g|| / ||w|| = 0.01 * 4 / 8


def test_monitor_step_reads_every_layer_in_one_sync_with_the_same_values(monkeypatch):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.Flatten(),
                        nn.Linear(8 * 4 * 4, 10))
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    r = UpdateRatio(net)
    r.snapshot()
    before = {n: p.detach().clone() for n, p in r.params.items()}
    net(torch.randn(4, 3, 8, 8)).square().mean().backward()
    want_g = {n: float(p.grad.norm()) for n, p in r.params.items()}  # one read per layer
    reads = []
    for name in ("item", "tolist", "__float__"):
        real = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda self, *a, _r=real, **k: (
            reads.append(1), _r(self, *a, **k))[1])
    got_g = r.grad_norms()
    opt.step()
    got_r = r.ratios()
    monkeypatch.undo()
    assert len(reads) == 2  # one per call, however many layers
    assert got_g == want_g and list(got_g) == ["0.weight", "2.weight", "4.weight"]
    assert got_r == {n: float((p.detach() - before[n]).norm() / before[n].norm())
                     for n, p in r.params.items()}


def test_vanishing_activations_and_dead_relus_are_reported():
    torch.manual_seed(0)
    layers = []
    for _ in range(8):  # the lectures' "bad" init: small weights, tanh, depth 8
        lin = nn.Linear(64, 64)
        nn.init.normal_(lin.weight, std=0.01)
        nn.init.zeros_(lin.bias)
        layers += [lin, nn.Tanh()]
    dead = nn.Linear(64, 64)
    nn.init.constant_(dead.bias, -100.0)
    net = nn.Sequential(*layers, dead, nn.ReLU())
    var, zeros = activation_stats(net, torch.randn(128, 64))
    assert var["0"] > 1e-5 and var["15"] < 1e-12  # variance collapses with depth
    assert zeros["17"] == 1.0
    msgs = dict(health_warnings({"a.weight": 1e-5, "b.weight": 0.05, "c.weight": 1e-3,
                                 "d.weight": 1e-2}, var, zeros))
    assert "learning rate too low" in msgs["a.weight:low"]
    assert "learning rate too high" in msgs["b.weight:high"]
    assert "c.weight:low" not in msgs and "c.weight:high" not in msgs
    assert "d.weight:high" not in msgs  # "within a relatively healthy limit" (the slide)
    assert "activations vanish" in msgs["15:var"] and "dead ReLU" in msgs["17:dead"]
    assert "a.weight:low" not in dict(health_warnings({"a.weight": 1e-5}, {}, {},
                                                      annealing=True))
