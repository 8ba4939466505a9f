"""`depth-width-cardinality`: double a small bottleneck ResNet's MACs three ways (more blocks,
a wider bottleneck, more paths) and compare accuracy: Xie et al. 2017's Table 4 at small
scale, with Table 3's idea (cardinality against width at fixed cost) beside it."""

from __future__ import annotations

import torch

from cnnzoo.casestudy import common
from cnnzoo.casestudy.core import INCONCLUSIVE, Context, Finding, Rule, Study, combine
from cnnzoo.models.resnet import Bottleneck, ResNet

RULE = Rule("the ResNeXt's test accuracy exceeds that of the deeper and of the wider ResNet "
            "(each by more than the spread)")
MAC_TOLERANCE = 0.1  # the three nets' MACs agree within 10% (checked, not judged)


def bottleneck_net(blocks: int, num_classes: int, in_chans: int, *, groups=1,
                   width_per_group=64, planes=16) -> ResNet:
    """CIFAR-style bottleneck ResNet: 3x3 stem 16, three stages of `blocks` bottlenecks
    (planes 16/32/64, outputs x4), projection shortcuts; 9 * blocks + 2 layers. The inner
    width is int(planes * width_per_group / 64) * groups (ResNeXt's C x d template)."""
    return ResNet(Bottleneck, (blocks,) * 3, num_classes, in_chans,
                  widths=(planes, 2 * planes, 4 * planes), stem="small", stem_width=16,
                  shortcut="B", groups=groups, width_per_group=width_per_group)


# The base is 2 blocks per stage, 1x64d (25.6M MACs at 28x28); each of these doubles it.
NETS = {  # name: (blocks per stage, groups, width per group), Table 4's settings
    "deeper ResNet (1x64d, 38 layers)": (4, 1, 64),
    "wider ResNet (1x100d, 20 layers)": (2, 1, 100),
    "ResNeXt (2x64d, 20 layers)": (2, 2, 64),
}
PAPER = {"deeper ResNet (1x64d, 38 layers)": "ResNet-200 1x64d: 21.7",
         "wider ResNet (1x100d, 20 layers)": "ResNet-101 wider 1x100d: 21.3",
         "ResNeXt (2x64d, 20 layers)": "ResNeXt-101 2x64d: 20.7"}


def run(ctx: Context) -> Finding:
    from cnnzoo.analysis import profile

    per_class, epochs, bs = common.pick(ctx, (6, 1, 32), (400, 4, 128), (None, 100, 128))
    augment = common.pick(ctx, "flip", "flip", "flip,crop:4")
    data = common.load(ctx, per_class, test_per_class=common.pick(ctx, 4, 300, None))
    c, h, w = data.shape
    planes = common.pick(ctx, 4, 16, 16)
    build = {k: (lambda b=b, g=g, d=d: bottleneck_net(b, data.num_classes, c, groups=g,
                                                      width_per_group=d, planes=planes))
             for k, (b, g, d) in NETS.items()}
    macs = {k: profile(f(), (c, h, w), training=False).macs for k, f in build.items()}
    params = {k: sum(p.numel() for p in f().parameters()) for k, f in build.items()}
    base = profile(bottleneck_net(2, data.num_classes, c, planes=planes), (c, h, w),
                   training=False).macs
    acc = {k: [] for k in NETS}
    sec = {k: [] for k in NETS}
    for seed in range(ctx.seeds):
        fits = {}
        for k, f in build.items():
            torch.manual_seed(seed)
            fits[k] = common.Fit(f(), data, epochs, ctx.device, seed=seed, batch_size=bs,
                                 lr=0.1, weight_decay=5e-4, augment=augment)
        ctx.progress(f"depth-width-cardinality: seed {seed}, three nets in turns")
        common.train_together(list(fits.values()))
        for k, fit in fits.items():
            acc[k].append(common.accuracy(fit.model, data, data.test, ctx.device))
            sec[k].append(fit.seconds_per_epoch)
    deep, wide, nxt = NETS
    parts = [RULE.judge(acc[nxt], acc[other]) for other in (deep, wide)]
    matched = max(macs.values()) / min(macs.values()) - 1 <= MAC_TOLERANCE
    verdict = combine([p[0] for p in parts] + ([] if matched else [INCONCLUSIVE]))
    rows = [{"network": k, "MACs": macs[k], "x base": macs[k] / base, "params": params[k],
             "test accuracy %": common.pm(acc[k]), "s / epoch": common.pm(sec[k], 1, 2),
             "paper, ImageNet top-1 err %": PAPER[k]} for k in NETS]
    why = (f"ResNeXt minus deeper ResNet: {100 * parts[0][1]:+.2f} points (noise "
           f"{100 * parts[0][2]:.2f}): {parts[0][0]}; ResNeXt minus wider ResNet: "
           f"{100 * parts[1][1]:+.2f} points (noise {100 * parts[1][2]:.2f}): {parts[1][0]}. "
           f"MACs {'matched' if matched else 'NOT matched'} within {MAC_TOLERANCE:.0%} "
           f"({min(macs.values()) / 1e6:.1f}M to {max(macs.values()) / 1e6:.1f}M, "
           f"{min(macs.values()) / base:.2f}x to {max(macs.values()) / base:.2f}x the base); "
           "time per epoch is reported, not judged: equal MACs need not mean equal time.")
    return Finding(
        setting=(f"{data.describe()}. Base: a CIFAR-style bottleneck ResNet, 3x3 stem 16, 2 "
                 f"bottlenecks per stage (planes {planes}/{2 * planes}/{4 * planes}, outputs "
                 f"x4, projection shortcuts), {base / 1e6:.1f}M MACs at {h}x{w}; each net "
                 "spends about twice that (the x base column): 4 blocks per stage "
                 "(deeper), a 100/64 wider bottleneck (wider), or 2 groups of the base's "
                 "width in the 3x3 conv (ResNeXt, cardinality 2). SGD momentum 0.9, lr 0.1 "
                 f"warm-up then cosine, weight decay 5e-4, batch {bs}, {augment}, {epochs} "
                 "epochs; the three train in turns, epoch by epoch."),
        measured=rows, verdict=verdict, why=why,
        caveat=("The paper's gains (1.0-1.3 points on ImageNet) come from 1.28M images of "
                "1000 classes over 100 epochs; a few epochs of 10 Fashion-MNIST classes leave "
                "differences of that size inside the seeds' spread, and a short run favours "
                "whichever net optimises fastest rather than the one with the most capacity."),
        plots={"depth_width_cardinality.png": _figure(acc, macs, base)},
        data={"test_acc": acc, "seconds_per_epoch": sec, "macs": macs, "params": params,
              "base_macs": base})


def _figure(acc, macs, base):
    plt = common.plt()
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    names = list(acc)
    colors = ["#4a7ab5", "#6aa84f", "#c46a3a"]
    ms = [100 * common.mean(acc[k]) for k in names]
    ax.barh(names, ms, xerr=[100 * common.spread(acc[k]) for k in names], color=colors,
            capsize=6)
    for i, k in enumerate(names):
        ax.scatter([100 * v for v in acc[k]], [i] * len(acc[k]), color="k", s=12, zorder=3)
        ax.text(ms[i], i + 0.3, f" {macs[k] / base:.2f}x base MACs", va="center", fontsize=8)
    lo = min(min(v) for v in acc.values()) * 100
    ax.set_xlim(max(0, lo - 3), min(100, max(ms) + 2))
    ax.set_xlabel("test accuracy % (dots: seeds)")
    ax.invert_yaxis()
    ax.set_title("About twice the base's MACs, spent on depth, width or cardinality")
    fig.tight_layout()
    return common.png(fig)


STUDY = Study(
    name="depth-width-cardinality",
    title="Cardinality against depth and width at matched MACs",
    claim="Propose \u201ccardinality\u201d as a new factor in network design, apart from depth "
          "and width - Claim that increasing cardinality is a better way to increase capacity "
          "than increasing depth or width",
    source="seed 002, Beyond ResNet: ResNeXt",
    paper="Xie et al. 2017, ImageNet top-1 error, 224 single crop. Table 4 (twice ResNet-101's "
          "complexity): ResNet-200 21.7, ResNet-101 wider (1x100d) 21.3, ResNeXt-101 2x64d "
          "20.7, against 22.0 for ResNet-101. Table 3 (the seed's, ~4.1 GFLOPs kept): "
          "ResNet-50 1x64d 23.9, ResNeXt-50 2x40d 23.0, 4x24d 22.6, 8x14d 22.3, 32x4d 22.2.",
    rule=f"{RULE.text}; inconclusive unless the three nets' MACs agree within "
         f"{MAC_TOLERANCE:.0%}.",
    run=run)
