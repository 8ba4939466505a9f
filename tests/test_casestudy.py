"""Case studies: the verdict rule, the report's structure at a tiny budget, bad input."""

from __future__ import annotations

import json

import pytest

from cnnzoo.casestudy import STUDIES, StudyError, run_study
from cnnzoo.casestudy.core import CONFIRMED, INCONCLUSIVE, NOT_CONFIRMED, Rule, combine
from cnnzoo.cli import main


def test_rule_reads_the_spread():
    r = Rule("a > b", margin=0.01)
    assert r.judge([0.9, 0.92], [0.5, 0.52])[0] == CONFIRMED
    assert r.judge([0.5, 0.52], [0.9, 0.92])[0] == NOT_CONFIRMED
    assert r.judge([0.5, 0.7], [0.55, 0.6])[0] == INCONCLUSIVE  # inside the spread
    # one seed: no spread, so a difference below the margin is "not confirmed"
    assert r.judge([0.505], [0.5])[0] == NOT_CONFIRMED
    assert combine([CONFIRMED, INCONCLUSIVE]) == INCONCLUSIVE
    assert combine([CONFIRMED, NOT_CONFIRMED]) == NOT_CONFIRMED
    assert combine([CONFIRMED, CONFIRMED]) == CONFIRMED


SECTIONS = ["**Claim**", "**The paper's number:**", "**Setting run**", "**Measured**",
            "**Verdict:"]


@pytest.mark.parametrize("name", list(STUDIES))
def test_report_structure_at_tiny_budget(name, tmp_path):
    r = run_study(name, budget="tiny", seeds=1, out=tmp_path / name, command="test")
    md = (tmp_path / name / "report.md").read_text()
    pos = [md.index(s) for s in SECTIONS]
    assert pos == sorted(pos), "sections in the issue's order"
    assert r["verdict"] in (CONFIRMED, NOT_CONFIRMED, INCONCLUSIVE)
    res = json.loads((tmp_path / name / "results.json").read_text())
    assert res["machine"]["cpu"] and res["machine"]["torch"] and res["wall_time_s"] > 0
    assert res["measured"] and all(isinstance(row, dict) for row in res["measured"])
    html = (tmp_path / name / "report.html").read_text()
    assert "http://" not in html and "https://" not in html, "self-contained"
    for plot in res["plots"]:
        assert (tmp_path / name / plot).read_bytes()[:4] == b"\x89PNG"
        assert f"({plot})" in md
    if res["verdict"] != CONFIRMED:
        assert "**Why it might not hold here:**" in md
    _sane(res["data"])


def _sane(obj, key=""):
    """Every number a study keeps is finite (no null from a NaN); accuracies and error rates
    are fractions."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            _sane(v, f"{key}/{k}")
    elif isinstance(obj, list):
        for v in obj:
            _sane(v, key)
    else:
        assert obj is not None, f"{key}: not finite"
        if isinstance(obj, float) and ("acc" in key or "error" in key):
            assert 0.0 <= obj <= 1.0, f"{key}: {obj} is not a fraction"


def test_bottleneck_counts_are_the_seeds(tmp_path):
    r = run_study("bottleneck", budget="tiny", out=tmp_path / "b", command="test")
    per_pos = {row["layer"]: row["MACs / position"] for row in r["measured"]}
    assert per_pos["3x3 conv, 256 -> 256"] == 256 * 256 * 9
    assert per_pos["1x1 64 / 3x3 64 / 1x1 256"] == 256 * 64 + 64 * 64 * 9 + 64 * 256


def test_bad_input_is_one_line(tmp_path, capsys):
    assert main(["casestudy", "nosuch", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown study 'nosuch'" in err[0] and "bottleneck" in err[0]
    assert main(["casestudy", "bottleneck", "--budget", "huge", "--out", str(tmp_path / "y")]) \
        == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown budget 'huge'" in err[0]
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    with pytest.raises(StudyError):
        run_study("bottleneck", budget="full", seeds=0, out=tmp_path / "z")


# --- per-study sanity: the numbers each study rests on, checked without training ---------

def test_small_filters_weights_and_receptive_field():
    import torch

    from cnnzoo.casestudy.small_filters import block, conv_weights

    c = 8
    assert conv_weights(block(c, stacked=True)) == 27 * c * c
    assert conv_weights(block(c, stacked=False)) == 49 * c * c
    for stacked in (True, False):  # the centre output sees exactly a 7x7 input window
        b = block(c, stacked).eval()
        x = torch.randn(1, c, 15, 15, requires_grad=True)
        b(x)[0, :, 7, 7].sum().backward()
        seen = (x.grad.abs().sum(1)[0] > 0).nonzero()
        assert seen.min(0).values.tolist() == [4, 4] and seen.max(0).values.tolist() == [10, 10]


def test_depth_width_cardinality_macs_are_matched():
    from cnnzoo.analysis import profile
    from cnnzoo.casestudy.depth_width_cardinality import MAC_TOLERANCE, NETS, bottleneck_net

    base = profile(bottleneck_net(2, 10, 1), (1, 28, 28), training=False).macs
    macs = [profile(bottleneck_net(b, 10, 1, groups=g, width_per_group=d), (1, 28, 28),
                    training=False).macs for b, g, d in NETS.values()]
    assert max(macs) / min(macs) - 1 <= MAC_TOLERANCE
    assert all(1.6 < m / base < 2.2 for m in macs), "each spends about twice the base"


def test_stochastic_depth_paper_form_skips_whole_batches():
    import torch

    from cnnzoo.casestudy.stochastic_depth import P_L, paper_form
    from cnnzoo.models.resnet import cifar_resnet, survival_probs

    m = paper_form(14, 10, 1)
    blocks = [b for s in (m.layer1, m.layer2, m.layer3) for b in s]
    assert [b.p for b in blocks] == survival_probs(cifar_resnet(14, stochastic_depth=P_L))
    b = blocks[1]  # no downsampling: a dropped block passes its input unchanged
    x = torch.relu(torch.randn(4, 16, 8, 8))
    calls = []
    hook = b.block.conv1.register_forward_hook(lambda *a: calls.append(1))
    b.train()
    b.p = 0.0
    assert torch.equal(b(x), x) and not calls, "dropped: no convolution computed"
    b.p = 1.0
    b.block.train()
    assert torch.allclose(b(x), b.block(x)) and calls
    hook.remove()
    b.eval()
    b.p = 0.25  # test time: the branch scaled by its survival
    blk = b.block.eval()
    branch = blk.bn2(blk.conv2(blk.relu1(blk.bn1(blk.conv1(x)))))
    assert torch.allclose(b(x), torch.relu(x + 0.25 * branch), atol=1e-6)


def test_ensembles_of_paths_deletes_the_right_blocks():
    import torch

    from cnnzoo.casestudy import common
    from cnnzoo.casestudy.core import Context
    from cnnzoo.casestudy.ensembles_of_paths import blocks
    from cnnzoo.models.resnet import cifar_resnet

    for residual in (True, False):
        names = [n for _, _, n in blocks(cifar_resnet(20, residual=residual))]
        assert names == ["1.0", "1.1", "1.2", "2.1", "2.2", "3.1", "3.2"]
    ctx = Context("tiny", 1, None, torch.device("cpu"))
    data = common.load(ctx, 4, 2)
    m = cifar_resnet(8, data.num_classes, 1).eval()
    before = {n: b.running_mean.clone() for n, b in m.named_modules()
              if isinstance(b, torch.nn.BatchNorm2d)}
    common.reestimate_bn(m, data, ctx.device, 32, after="layer2.0")
    after = {n: b.running_mean for n, b in m.named_modules()
             if isinstance(b, torch.nn.BatchNorm2d)}
    assert all(torch.equal(before[n], after[n]) for n in before if not n.startswith(
        ("layer2", "layer3"))), "layers before the deletion keep their statistics"
    assert not torch.equal(before["layer3.0.bn1"], after["layer3.0.bn1"])


def test_ensembling_views_none_and_flip_are_the_image():
    import torch

    from cnnzoo.casestudy.ensembling import MODES
    from cnnzoo.data import tta_views

    x = torch.rand(2, 1, 28, 28)
    views = [tta_views(x, "10crop", views=[v])[0] for v in range(10)]
    assert [torch.equal(views[v], x) for v in MODES["none"]] == [True]
    assert torch.equal(views[MODES["flip"][1]], x.flip(3))


def test_initialisation_variances_at_init():
    import torch

    from cnnzoo.casestudy.initialisation import BAD, GOOD, mlp, variances

    torch.manual_seed(0)
    x = torch.randn(500, 784)
    for act in ("tanh", "relu"):
        bad = variances(mlp(act, BAD, 784, 10), x)
        good = variances(mlp(act, GOOD[act], 784, 10), x)
        assert len(bad) == len(good) == 10
        assert bad[-1] < 1e-6 * bad[0], "small random weights: the variance vanishes"
        assert good[-1] > 0.1 * good[0], "Xavier (tanh) / He (ReLU): it is preserved"


def test_lenet_then_now_variants():
    import torch

    from cnnzoo.casestudy.lenet_then_now import _variants

    v = _variants(28)
    nets = {k: b(10, 1) for k, (b, _) in v.items()}
    counts = [sum(p.numel() for p in n.parameters()) for n in nets.values()]
    assert all(55_000 < n < 65_000 for n in counts), "about 60,000 parameters (seed 002)"
    modern = list(nets.values())[-1]
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in modern.modules()) == 3
    assert list(v.values())[0][1] is None and list(v.values())[-1][1]


def test_transfer_far_target_and_crossover():
    import torch

    from cnnzoo.casestudy.transfer_small_data import crossover, far
    from cnnzoo.data.datasets import ArrayDataset

    x = torch.randint(0, 256, (3, 1, 4, 4), dtype=torch.uint8)
    ds = ArrayDataset(x, torch.tensor([0, 1, 2]), ["a", "b", "c"], "t")
    f = far(ds, "far")
    assert torch.equal(f.images[0, 0], (255 - x[0, 0]).rot90(1)) and f.labels.tolist() == [0, 1, 2]
    # scratch (b) reaches fine-tune (a) halfway between 10 and 100 in log n
    assert abs(crossover([10, 100, 1000], [0.5, 0.7, 0.8], [0.3, 0.7, 0.9]) - 100) < 1e-6
    assert abs(crossover([10, 100], [0.6, 0.7], [0.5, 0.8]) - 10 ** 1.5) < 1e-6
    assert crossover([10, 100], [0.6, 0.7], [0.5, 0.6]) is None
