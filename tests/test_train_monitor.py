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
