import pytest
import torch
import torch.nn as nn

from cnnzoo.models.layers import AuxOutput, ConvBnAct, DropPath, init_weights, main_logits


def test_conv_bn_act_same_padding_and_names():
    m = ConvBnAct(3, 8, 3)
    assert [n for n, _ in m.named_children()] == ["conv", "bn", "act"]
    assert m(torch.randn(2, 3, 10, 10)).shape == (2, 8, 10, 10)
    m = ConvBnAct(3, 8, (1, 7), act=None)
    assert m(torch.randn(1, 3, 9, 9)).shape == (1, 8, 9, 9)
    assert m.conv.bias is None


def test_drop_path_eval_expected_value_and_train_mask():
    torch.manual_seed(0)
    dp = DropPath(0.25)
    x = torch.ones(4000, 3)
    dp.eval()
    assert torch.allclose(dp(x), x * 0.75)
    dp.train()
    y = dp(x)
    rows = y[:, 0]
    assert set(rows.unique().tolist()) <= {0.0, 1.0}  # whole sample kept or dropped
    assert (y == y[:, :1]).all()
    frac = (rows == 0).float().mean().item()
    # binomial(4000, 0.25): std ~0.0068; 5 sigma
    assert abs(frac - 0.25) < 0.035
    inverted = DropPath(0.25, scale_by_keep=True).train()
    vals = inverted(x)[:, 0].unique()
    assert len(vals) == 2 and vals[0] == 0 and abs(vals[1].item() - 1 / 0.75) < 1e-6
    with pytest.raises(ValueError):
        DropPath(1.0)


def test_init_weights_he_and_xavier_never_zero():
    net = nn.Sequential(nn.Conv2d(3, 16, 3), nn.Linear(10, 10))
    init_weights(net, "relu")
    for m in net:
        assert m.weight.abs().sum() > 0 and m.bias.abs().sum() == 0
    conv = net[0]
    fan_out = 16 * 9
    assert abs(conv.weight.std().item() - (2 / fan_out) ** 0.5) < 0.3 * (2 / fan_out) ** 0.5
    init_weights(net, "tanh")
    assert net[1].weight.abs().max() <= (5 / 3) * (6 / 20) ** 0.5 + 1e-6


def test_init_weights_linear_fan_in_conv_fan_out():
    # A 4096 -> 10 classifier: fan_in keeps unit-scale logits (std sqrt(2/4096) = 0.022);
    # fan_out would give std sqrt(2/10) = 0.45 and an initial loss of 15-35.
    torch.manual_seed(0)
    net = init_weights(nn.Sequential(nn.Conv2d(64, 8, 3), nn.Linear(4096, 10)), "relu")
    conv, fc = net
    assert abs(fc.weight.std().item() / (2 / 4096) ** 0.5 - 1) < 0.05
    assert abs(conv.weight.std().item() / (2 / (8 * 9)) ** 0.5 - 1) < 0.1  # fan_out = 8*3*3
    x = torch.relu(torch.randn(256, 4096))  # ReLU of unit-variance inputs, as He assumes
    assert 0.7 < fc(x).std().item() < 1.3


def test_main_logits():
    t = torch.zeros(2, 3)
    assert main_logits(t) is t
    assert main_logits(AuxOutput(t, (t,))) is t
