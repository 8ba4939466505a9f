"""`stochastic-depth`: time per epoch and accuracy with and without stochastic depth (Huang et
al. 2016), in two forms: the paper's (a whole mini-batch skips a block, whose convolutions are
then not computed) and the library's DropPath (a per-sample mask on a computed branch)."""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

from cnnzoo.casestudy import common
from cnnzoo.casestudy.core import Context, Finding, Rule, Study, combine
from cnnzoo.models.resnet import BasicBlock, cifar_resnet, survival_probs

P_L = 0.5  # the paper's last-block survival, linear decay from the input
TIME_RULE = Rule("stochastic depth in the paper's form saves more than 10% of the time per "
                 "epoch (the paper: about 25%)", margin=0.10)
ACC_RULE = Rule("stochastic depth in the paper's form gives a higher test accuracy than none "
                "(by more than the spread)")


class SkipWholeBatch(nn.Module):
    """Huang et al.'s form of a block with survival p: in training the whole mini-batch skips
    it with probability 1 - p, so its convolutions are not run; in eval the branch is scaled
    by p. (The library's DropPath masks samples of a computed branch, which saves nothing.)"""

    def __init__(self, block: BasicBlock, survival: float):
        super().__init__()
        self.block, self.p = block, survival

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.block
        identity = x if b.downsample is None else b.downsample(x)
        if self.training and torch.rand(()).item() >= self.p:
            return identity  # relu(identity) = identity: x is a ReLU output (or padded one)
        branch = b.bn2(b.conv2(b.relu1(b.bn1(b.conv1(x)))))
        return b.relu2(identity + (branch if self.training else self.p * branch))


def paper_form(depth: int, num_classes: int, in_chans: int) -> nn.Module:
    """A CIFAR ResNet whose blocks skip per mini-batch with the library's survival rates."""
    probs = iter(survival_probs(cifar_resnet(depth, num_classes, in_chans,
                                             stochastic_depth=P_L)))
    model = cifar_resnet(depth, num_classes, in_chans)
    for stage in (model.layer1, model.layer2, model.layer3):
        for i, block in enumerate(stage):
            stage[i] = SkipWholeBatch(block, next(probs))
    return model


def run(ctx: Context) -> Finding:
    depth = common.pick(ctx, 8, 32, 110)
    per_class, epochs, bs = common.pick(ctx, (6, 2, 32), (320, 5, 128), (None, 500, 128))
    milestones = common.pick(ctx, None, None, [0.5, 0.75])  # the paper: /10 at 250 and 375
    augment = common.pick(ctx, "flip", "flip", "flip,crop:4")
    data = common.load(ctx, per_class, test_per_class=common.pick(ctx, 4, 300, None))
    c = data.shape[0]
    variants = {
        "no stochastic depth": lambda: cifar_resnet(depth, data.num_classes, c),
        "paper's form (per mini-batch)": lambda: paper_form(depth, data.num_classes, c),
        "library DropPath (per sample)": lambda: cifar_resnet(depth, data.num_classes, c,
                                                              stochastic_depth=P_L),
    }
    acc = {k: [] for k in variants}
    sec = {k: [] for k in variants}
    refit = []  # the paper's form with its batch-norm statistics re-estimated
    for seed in range(ctx.seeds):
        fits = {}
        for k, build in variants.items():
            torch.manual_seed(seed)
            fits[k] = common.Fit(build(), data, epochs, ctx.device, seed=seed, batch_size=bs,
                                 lr=0.1, weight_decay=1e-4, augment=augment,
                                 milestones=milestones)
        ctx.progress(f"stochastic-depth: seed {seed}, three ResNet-{depth}s in turns")
        common.train_together(list(fits.values()))
        for k, f in fits.items():
            acc[k].append(common.accuracy(f.model, data, data.test, ctx.device))
            sec[k].append(f.seconds_per_epoch)
        # Diagnosis, not judged: the paper's form trains each batch-norm layer on batches
        # where earlier blocks were all dropped or all kept; statistics re-estimated on the
        # whole (test-time) net show how much of its test accuracy that mismatch costs.
        m = copy.deepcopy(fits[list(variants)[1]].model)
        common.reestimate_bn(m, data, ctx.device, 1000)
        refit.append(common.accuracy(m, data, data.test, ctx.device))
    none, paper, lib = variants
    saving = {k: [1 - t / t0 for t, t0 in zip(sec[k], sec[none])] for k in variants}
    time_v, _, time_n = TIME_RULE.judge(saving[paper], [0.0] * ctx.seeds)
    acc_v, acc_d, acc_n = ACC_RULE.judge(acc[paper], acc[none])
    verdict = combine([time_v, acc_v])
    expected = 1 - sum(survival_probs(variants[lib]())) / (3 * ((depth - 2) // 6))
    rows = [{"variant": k, "s / epoch": common.pm(sec[k], 1, 2),
             "time saved %": common.pm(saving[k]) if k != none else "",
             "test accuracy %": common.pm(acc[k])} for k in variants]
    rows.insert(2, {"variant": "paper's form, BN statistics re-estimated (diagnosis)",
                    "s / epoch": "", "time saved %": "", "test accuracy %": common.pm(refit)})
    why = (f"Time saved per epoch by the paper's form: {common.pm(saving[paper])}% (noise "
           f"{100 * time_n:.1f}; the expected share of skipped blocks is {100 * expected:.0f}%"
           f", about what the saving can reach: the stem, pooling and classifier always run): "
           f"{time_v}. Test accuracy, paper's form minus none: {100 * acc_d:+.2f} points "
           f"(noise {100 * acc_n:.2f}): {acc_v}. The library's per-sample DropPath saved "
           f"{common.pm(saving[lib])}% (it computes every branch), at test accuracy "
           f"{common.pm(acc[lib])}%. With its batch-norm statistics re-estimated on 1,000 "
           f"training images through the whole net, the paper's form tests at "
           f"{common.pm(refit)}% (a diagnosis, not part of the rule), against "
           f"{common.pm(acc[paper])}% as trained: the difference is the effect of statistics "
           "gathered on batches that skipped whole blocks.")
    return Finding(
        setting=(f"{data.describe()}. CIFAR ResNet-{depth} ({3 * ((depth - 2) // 6)} blocks), "
                 f"survival decaying linearly to p_L = {P_L} (Huang et al.), eval scaling the "
                 "branch by its survival. SGD momentum 0.9, lr 0.1 "
                 f"({'/10 at 50% and 75%' if milestones else 'warm-up then cosine'}), weight "
                 f"decay 1e-4, batch {bs}, {augment}, {epochs} epochs; the three variants "
                 "train in turns, epoch by epoch; time per epoch leaves out the first."),
        measured=rows, verdict=verdict, why=why,
        caveat=("Stochastic depth is a regulariser for long runs (the paper: 500 epochs); in a "
                "few epochs it mostly slows learning, so the accuracy part can fail here and "
                "hold at the paper's scale. The time saving depends on how much of an epoch "
                "the skipped convolutions are, and on a loaded machine on the other jobs."),
        plots={"stochastic_depth.png": _figure(sec, acc, saving, refit)},
        data={"test_acc": acc, "seconds_per_epoch": sec, "time_saved": saving,
              "test_acc_bn_reestimated": refit,
              "expected_skipped": expected})


def _figure(sec, acc, saving, refit):
    plt = common.plt()
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.6))
    names = list(sec)
    colors = ["#888888", "#c46a3a", "#4a7ab5"]
    for ax, vals, label, scale in ((axes[0], sec, "seconds per training epoch", 1),
                                   (axes[1], acc, "test accuracy %", 100)):
        ms = [scale * common.mean(vals[k]) for k in names]
        ax.barh(names, ms, xerr=[scale * common.spread(vals[k]) for k in names],
                color=colors, capsize=5)
        for i, k in enumerate(names):
            ax.scatter([scale * v for v in vals[k]], [i] * len(vals[k]), color="k", s=12,
                       zorder=3)
        ax.set_xlabel(label)
        ax.invert_yaxis()
    for i, k in enumerate(names[1:], 1):
        axes[0].text(0, i, f"  {-100 * common.mean(saving[k]):+.0f}% time", va="center",
                     fontsize=9, color="white", fontweight="bold")
    axes[1].scatter([100 * v for v in refit], [1] * len(refit), marker="x", color="k", s=40,
                    zorder=3, label="BN statistics re-estimated (diagnosis)")
    axes[1].legend(fontsize=8, loc="lower right")
    axes[1].set_yticks([])
    every = [v for vals in acc.values() for v in vals] + list(refit)
    axes[1].set_xlim(max(0, 100 * min(every) - 3), min(100, 100 * max(every) + 2))
    fig.suptitle("Stochastic depth: time per epoch and accuracy (dots: seeds)")
    fig.tight_layout()
    return common.png(fig)


STUDY = Study(
    name="stochastic-depth",
    title="Stochastic depth: shorter training, lower error",
    claim="At training time, in each mini-batch, randomly drop a subset of layers (bypass with "
          "identity function). At test time, use full network - Forces the network to learn "
          "better, speeds up convergence, improves accuracy",
    source="seed 002, Beyond ResNet: Stochastic depth; seed 004: \"motivation: reduce "
           "vanishing gradients and training time through short networks during training\"",
    paper="Huang et al. 2016: ResNet-110 on CIFAR-10, test error 6.41% -> 5.25% with "
          "stochastic depth (p_L = 0.5), and about 25% shorter training.",
    rule=f"{TIME_RULE.text}; and {ACC_RULE.text}.",
    run=run)
