"""`small-filters`: three stacked 3x3 convs against one 7x7 conv, the same 7x7 receptive field
and width C: 27C^2 against 49C^2 weights (seed 001), then accuracy and training time."""

from __future__ import annotations

import torch
import torch.nn as nn

from cnnzoo.casestudy import common
from cnnzoo.casestudy.core import CONFIRMED, NOT_CONFIRMED, Context, Finding, Rule, Study, combine

ACC_RULE = Rule("the 3x3 stack's test accuracy exceeds the 7x7's (by more than the spread)")
TIME_RULE = Rule("the 3x3 stack's training epoch is shorter than the 7x7's (by more than the "
                 "spread)")


def block(c: int, stacked: bool) -> nn.Sequential:
    """Receptive field 7 either way: 3x3-BN-ReLU three times, or 7x7-BN-ReLU once. No conv
    bias (BN follows), so the weights are exactly 27C^2 or 49C^2."""
    if stacked:
        layers = []
        for _ in range(3):
            layers += [nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
        return nn.Sequential(*layers)
    return nn.Sequential(nn.Conv2d(c, c, 7, padding=3, bias=False), nn.BatchNorm2d(c), nn.ReLU())


def net(c: int, stacked: bool, in_chans: int, num_classes: int) -> nn.Sequential:
    """A 3x3 stem to width C, the block at full resolution, a 2x2 max-pool, the block again
    at half resolution, global average pooling, a linear classifier."""
    return nn.Sequential(
        nn.Conv2d(in_chans, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
        block(c, stacked), nn.MaxPool2d(2), block(c, stacked),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))


def conv_weights(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters() if p.ndim == 4)


def run(ctx: Context) -> Finding:
    from cnnzoo.analysis import profile

    c = common.pick(ctx, 8, 32, 64)
    per_class, epochs, bs = common.pick(ctx, (6, 1, 32), (500, 5, 128), (None, 60, 128))
    data = common.load(ctx, per_class, test_per_class=common.pick(ctx, 4, 300, None))
    ch, h, w = data.shape
    kinds = {"three 3x3": True, "one 7x7": False}
    acc = {k: [] for k in kinds}
    sec = {k: [] for k in kinds}
    for seed in range(ctx.seeds):
        fits = {}
        for k, stacked in kinds.items():
            torch.manual_seed(seed)
            fits[k] = common.Fit(net(c, stacked, ch, data.num_classes), data, epochs, ctx.device,
                                 seed=seed, batch_size=bs, lr=0.1, augment="flip")
        ctx.progress(f"small-filters: seed {seed}, both nets in turns")
        common.train_together(list(fits.values()))
        for k, f in fits.items():
            acc[k].append(common.accuracy(f.model, data, data.test, ctx.device))
            sec[k].append(f.seconds_per_epoch)
    blocks = {k: block(c, s) for k, s in kinds.items()}
    weights = {k: conv_weights(b) for k, b in blocks.items()}
    macs = {k: profile(net(c, s, ch, data.num_classes), (ch, h, w), training=False).macs
            for k, s in kinds.items()}
    count_v = CONFIRMED if (weights["three 3x3"], weights["one 7x7"]) == (27 * c * c,
                                                                         49 * c * c) \
        else NOT_CONFIRMED
    acc_v, acc_d, acc_n = ACC_RULE.judge(acc["three 3x3"], acc["one 7x7"])
    # "shorter" is b - a > 0: judge the 7x7's time against the stack's
    time_v, time_d, time_n = TIME_RULE.judge(sec["one 7x7"], sec["three 3x3"])
    verdict = combine([count_v, acc_v, time_v])
    rows = [{"block": k, "conv weights per block": weights[k],
             "as C^2": f"{weights[k] // (c * c)}C\u00b2", "MACs (whole net)": macs[k],
             "test accuracy %": common.pm(acc[k]), "s / epoch": common.pm(sec[k], 1, 2)}
            for k in kinds]
    why = (f"Weights per block at C = {c}: {weights['three 3x3']:,} (27C\u00b2) vs "
           f"{weights['one 7x7']:,} (49C\u00b2): {count_v}. Test accuracy: stack minus 7x7 = "
           f"{100 * acc_d:+.2f} points (noise {100 * acc_n:.2f}): {acc_v}. Training time per "
           f"epoch: the 7x7 takes {time_d:+.2f} s more (noise {time_n:.2f} s): {time_v}. "
           f"The stack also has {macs['three 3x3'] / macs['one 7x7']:.2f}x the 7x7 net's MACs "
           "and two more non-linearities per block.")
    return Finding(
        setting=(f"{data.describe()}. Net: 3x3 stem to C = {c}, the block at full resolution, "
                 "2x2 max-pool, the block again, global average pool, linear. Block = three "
                 "3x3 conv-BN-ReLU or one 7x7 conv-BN-ReLU (both see 7x7). SGD momentum 0.9, "
                 f"lr 0.1 warm-up then cosine, weight decay 5e-4, batch {bs}, flips, {epochs} "
                 "epochs; the two nets train in turns, epoch by epoch (time per epoch leaves "
                 f"out the first); {torch.get_num_threads()} threads."),
        measured=rows, verdict=verdict, why=why,
        caveat=("A few epochs on Fashion-MNIST may not separate the two nets' accuracy: the "
                "extra non-linearities matter most when the net is far from fitting its data. "
                "Time depends on the machine's convolution kernels (oneDNN picks different "
                "algorithms for 3x3 and 7x7) and, on a loaded machine, on the other jobs."),
        plots={"small_filters.png": _figure(rows, acc, sec, weights, c)},
        data={"test_acc": acc, "seconds_per_epoch": sec, "conv_weights": weights, "macs": macs,
              "C": c})


def _figure(rows, acc, sec, weights, c):
    plt = common.plt()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    names = list(acc)
    colors = ["#4a7ab5", "#c46a3a"]
    axes[0].bar(names, [weights[k] / (c * c) for k in names], color=colors)
    axes[0].set_ylabel("conv weights per block / C\u00b2")
    for i, k in enumerate(names):
        axes[0].text(i, weights[k] / (c * c), f"{weights[k] // (c * c)}C\u00b2", ha="center",
                     va="bottom")
    for ax, vals, label, scale in ((axes[1], acc, "test accuracy %", 100),
                                   (axes[2], sec, "seconds per training epoch", 1)):
        ms = [scale * common.mean(vals[k]) for k in names]
        err = [scale * common.spread(vals[k]) for k in names]
        ax.bar(names, ms, yerr=err, color=colors, capsize=6)
        for i, k in enumerate(names):
            ax.scatter([i] * len(vals[k]), [scale * v for v in vals[k]], color="k", s=12,
                       zorder=3)
        ax.set_ylabel(label)
        if scale == 100:
            lo = min(min(vals[k]) for k in names) * 100
            ax.set_ylim(max(0, lo - 5), min(100, max(ms) + 3))
    fig.suptitle("Three 3x3 convs vs one 7x7: the same receptive field (dots: seeds)")
    fig.tight_layout()
    return common.png(fig)


STUDY = Study(
    name="small-filters",
    title="A stack of 3x3 convs beats one 7x7",
    claim="Prefer a stack of small receptive field CONV to one large CONV layer - Ex) Three "
          "CONV layer consisting of 3x3 filters vs one CONV layer consisting 7x7 filters - "
          "Which is better? The former is BETTER! 1. Filtering is a linear function over the "
          "input. Thus, three stacks of CONV layer contain non-linearity to make features more "
          "expressive 2. Fast computation! [...] 7 x 7 CONV layer: C x (7 x 7 x C) = 49C^2; "
          "3 3 x 3 CONV layer: 3 x (C x (3 x 3 x C)) = 27C^2",
    source="seed 001, CNNs In Practice; seed 004, VGGNet",
    paper="Simonyan & Zisserman 2015: three 3x3 layers have 3(3\u00b2C\u00b2) = 27C\u00b2 "
          "weights, one 7x7 layer 49C\u00b2, \"81% more\" (sec. 2.3); their net B with each "
          "pair of 3x3 layers replaced by one 5x5 had a 7% higher top-1 error (sec. 4.1). No "
          "3x3-vs-7x7 accuracy is given.",
    rule=f"The block's conv weights are exactly 27C\u00b2 and 49C\u00b2; {ACC_RULE.text}; and "
         f"{TIME_RULE.text}.",
    run=run)
