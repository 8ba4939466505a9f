"""`degradation`: a deeper plain net has the higher *training* error; a deeper ResNet does not
(He et al. 2016, fig. 6). The CIFAR forms: 3 stages of n basic blocks, depth 6n + 2."""

from __future__ import annotations

import torch

from cnnzoo.casestudy import common
from cnnzoo.casestudy.core import Context, Finding, Rule, Study, combine
from cnnzoo.models.resnet import cifar_resnet

# Fixed before the run. Training error = 1 - accuracy on the training images, eval mode, no
# augmentation, after the last epoch.
PLAIN_RULE = Rule("the deeper plain net's training error exceeds the shallower one's by more "
                  "than 1 point", margin=0.01)
RESNET_RULE = Rule("the deeper ResNet's training error is not above the shallower one's by "
                   "more than 1 point", slack=0.01)


def run(ctx: Context) -> Finding:
    shallow, deep = common.pick(ctx, (8, 14), (20, 56), (20, 56))
    per_class, epochs, bs = common.pick(ctx, (6, 1, 32), (150, 6, 64), (None, 164, 128))
    # full: He et al.'s schedule (lr 0.1, /10 at 32k and 48k of 64k iterations, flip + crop)
    milestones = common.pick(ctx, None, None, [0.5, 0.75])
    augment = common.pick(ctx, None, None, "flip,crop:4")
    data = common.load(ctx, per_class, test_per_class=common.pick(ctx, 4, 100, None))
    c, _, _ = data.shape
    nets = {f"plain-{shallow}": (shallow, False), f"plain-{deep}": (deep, False),
            f"ResNet-{shallow}": (shallow, True), f"ResNet-{deep}": (deep, True)}
    err = {k: [] for k in nets}
    test_err = {k: [] for k in nets}
    curves = {k: [] for k in nets}
    for seed in range(ctx.seeds):
        fits = {}
        for k, (depth, residual) in nets.items():
            torch.manual_seed(seed)
            model = cifar_resnet(depth, data.num_classes, c, residual=residual)
            fits[k] = common.Fit(model, data, epochs, ctx.device, seed=seed, batch_size=bs,
                                 lr=0.1, weight_decay=1e-4, augment=augment,
                                 milestones=milestones)
        ctx.progress(f"degradation: seed {seed}, training {', '.join(nets)} in turns")
        common.train_together(list(fits.values()))
        for k, f in fits.items():
            err[k].append(1 - common.accuracy(f.model, data, data.train, ctx.device))
            test_err[k].append(1 - common.accuracy(f.model, data, data.test, ctx.device))
            curves[k].append([1 - r["train_acc"] for r in f.history])
    ps, pd, rs, rd = nets
    plain_v, plain_d, plain_n = PLAIN_RULE.judge(err[pd], err[ps])
    res_v, res_d, res_n = RESNET_RULE.judge(err[rs], err[rd])
    verdict = combine([plain_v, res_v])
    rows = [{"network": k, "depth": nets[k][0], "training error %": common.pm(err[k]),
             "test error %": common.pm(test_err[k]),
             "train err (running, last epoch) %": common.pm([r[-1] for r in curves[k]])}
            for k in nets]
    schedule = "/10 at 50% and 75%" if milestones else "warm-up then cosine"
    why = (f"Plain: {pd} minus {ps} training error = {100 * plain_d:+.2f} points (noise "
           f"{100 * plain_n:.2f}): {plain_v}. ResNet: {rd} minus {rs} = "
           f"{-100 * (res_d - 0.01):+.2f} points, allowed up to +1 (noise {100 * res_n:.2f}): "
           f"{res_v}.")
    return Finding(
        setting=(f"{data.describe()}. CIFAR nets (16/32/64 filters, option-A shortcuts, BN), "
                 f"depths {shallow} and {deep}, each plain and residual, same initial seed; "
                 f"SGD momentum 0.9, lr 0.1 ({schedule}), "
                 f"weight decay 1e-4, batch {bs}, {epochs} epochs, augmentation: "
                 f"{augment or 'none'}; the four nets train in turns, epoch by epoch."),
        measured=rows, verdict=verdict, why=why,
        caveat=(f"{epochs} epochs on {len(data.train):,} Fashion-MNIST images is a far "
                "shorter run than the paper's 64k iterations on CIFAR-10: early in training "
                "a deeper net can lag for reasons that vanish later (or the gap can grow), "
                "and an easy dataset lets every net approach zero training error."),
        plots={"degradation.png": _figure(curves, err, nets)},
        data={"train_error": err, "test_error": test_err, "running_train_error": curves})


def _figure(curves, err, nets):
    plt = common.plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, residual, title in ((axes[0], False, "plain"), (axes[1], True, "ResNet")):
        for k, (depth, res) in nets.items():
            if res != residual:
                continue
            runs = curves[k]
            e = range(1, len(runs[0]) + 1)
            m = [100 * common.mean(v) for v in zip(*runs)]
            style = "-o" if depth == max(d for d, _ in nets.values()) else "--o"
            ax.plot(e, m, style, lw=2, ms=4, label=f"{k}: final {100 * common.mean(err[k]):.1f}%")
            for r in runs:
                ax.plot(e, [100 * v for v in r], style[:-1], lw=0.6, alpha=0.4, color="grey")
        ax.set_title(f"{title} nets")
        ax.set_xlabel("epoch")
        ax.legend()
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("training error % (running, during the epoch)")
    fig.suptitle("Degradation: training error of shallow (dashed) and deep (solid) nets")
    fig.tight_layout()
    return common.png(fig)


STUDY = Study(
    name="degradation",
    title="Deeper plain nets train worse; deeper ResNets do not",
    claim="Problem of training plain NN: training error goes up (in practice) when having "
          "deeper NN. [...] With ResNet: training error goes down even with deeper layers.",
    source="seed 000, Residual block; seed 001: \"56-layer net has higher training and test "
           "error than 20-layer net\"",
    paper="He et al. 2016, fig. 6 (CIFAR-10): plain-56 has higher training error than "
          "plain-20, ResNet-56 lower than ResNet-20; test errors ResNet-20 8.75%, ResNet-56 "
          "6.97%.",
    rule=f"{PLAIN_RULE.text}; and {RESNET_RULE.text}.",
    run=run)
