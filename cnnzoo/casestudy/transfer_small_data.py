"""`transfer-small-data`: linear probe, fine-tuning and training from scratch against the number
of labelled images per class, on classes the source never saw, and on a second target further
from the source (the same classes turned sideways and inverted)."""

from __future__ import annotations

import dataclasses
import math

import torch

from cnnzoo.casestudy import common
from cnnzoo.casestudy.core import Context, Finding, Rule, Study, combine
from cnnzoo.models import create_model

SOURCE, TARGET = "0-4", "5-9"  # Fashion-MNIST: T-shirt..Coat -> Sandal, Shirt, Sneaker, Bag, Boot
METHODS = ("linear probe", "fine-tune", "from scratch")
SMALL_RULE = Rule("with the fewest labelled images, the better transfer (probe or fine-tune) "
                  "beats training from scratch by more than the spread")
LARGE_RULE = Rule("with the most labelled images, fine-tuning every layer beats the linear "
                  "probe (freezing fewer layers pays) by more than the spread")


def far(ds, name: str):
    """The target turned 90 degrees and inverted: the source never saw a white background or
    a sideways object (same labels)."""
    from cnnzoo.data.datasets import ArrayDataset

    images = (255 - ds.images).rot90(1, (2, 3)).contiguous()
    return ArrayDataset(images, ds.labels, list(ds.classes), name)


def target_data(ctx, n: int, seed: int, source: common.Data, far_away: bool) -> common.Data:
    """`n` labelled images per target class, normalised as the source net was."""
    d = common.load(ctx, n, common.pick(ctx, 4, None, None), classes=TARGET, seed=seed)
    if far_away:
        d = dataclasses.replace(d, train=far(d.train, d.train.name + " turned+inverted"),
                                test=far(d.test, d.test.name + " turned+inverted"))
    return dataclasses.replace(d, mean=source.mean, std=source.std)


def fit_target(ctx, method: str, source_model, data: common.Data, seed: int, steps: int,
               model_name: str, c: int) -> float:
    """Test accuracy of one method on one target set after `steps` optimiser steps."""
    torch.manual_seed(seed)
    model = create_model(model_name, num_classes=data.num_classes, in_chans=c)
    if method != "from scratch":
        body = {k: v for k, v in source_model.state_dict().items()
                if not k.startswith(_head(model) + ".")}
        model.load_state_dict(body, strict=False)  # a fresh classifier on the source body
    if method == "linear probe":
        for p in model.parameters():
            p.requires_grad_(False)
        for p in model.get_classifier().parameters():
            p.requires_grad_(True)
    bs = min(128, len(data.train))
    epochs = max(1, math.ceil(steps / (len(data.train) // bs)))
    lr = 1e-3 if method == "fine-tune" else 1e-2  # fine-tuning: a 10x smaller step
    f = common.Fit(model, data, epochs, ctx.device, seed=seed, batch_size=bs,
                   optimizer="adamw", lr=lr, weight_decay=0.05, warmup=0.1, augment="flip")
    for _ in range(epochs):
        f.epoch()
    return common.accuracy(f.model, data, data.test, ctx.device)


def _head(model) -> str:
    return next(n for n, m in model.named_modules() if m is model.get_classifier())


def crossover(ns: list[int], a: list[float], b: list[float]) -> float | None:
    """The n (log-interpolated) where curve b first reaches curve a: ns[0] when it starts
    there, None when it never does."""
    d = [y - x for x, y in zip(a, b)]
    if d[0] >= 0:
        return float(ns[0])
    for i in range(1, len(ns)):
        if d[i] >= 0:
            t = -d[i - 1] / (d[i] - d[i - 1])
            return math.exp(math.log(ns[i - 1]) + t * (math.log(ns[i]) - math.log(ns[i - 1])))
    return None


def run(ctx: Context) -> Finding:
    sizes = common.pick(ctx, [2, 5], [10, 100, 1000], [10, 100, 1000, 5000])
    steps = common.pick(ctx, 4, 200, 2000)
    model_name = common.pick(ctx, "lenet5", "lenet5", "resnet20")
    src_epochs = common.pick(ctx, 1, 4, 60)
    targets = {"near: unseen classes 5-9": False, "far: 5-9 turned 90 degrees, inverted": True}
    acc = {(t, m, n): [] for t in targets for m in METHODS for n in sizes}
    source_acc = []
    for seed in range(ctx.seeds):
        source = common.load(ctx, common.pick(ctx, 10, None, None),
                             common.pick(ctx, 4, None, None), classes=SOURCE, seed=seed)
        c = source.shape[0]
        torch.manual_seed(seed)
        net = create_model(model_name, num_classes=source.num_classes, in_chans=c)
        ctx.progress(f"transfer-small-data: seed {seed}, source net on classes {SOURCE}")
        fit = common.Fit(net, source, src_epochs, ctx.device, seed=seed, batch_size=256,
                         optimizer="adamw", lr=1e-2, weight_decay=0.1, warmup=0.3,
                         augment="flip")
        common.train_together([fit])
        source_acc.append(common.accuracy(net, source, source.test, ctx.device))
        for t, far_away in targets.items():
            for n in sizes:
                data = target_data(ctx, n, seed, source, far_away)
                for m in METHODS:
                    acc[t, m, n].append(fit_target(ctx, m, net, data, seed, steps, model_name,
                                                   c))
                ctx.progress(f"  {t}, {n}/class: " + ", ".join(
                    f"{m} {100 * acc[t, m, n][-1]:.1f}%" for m in METHODS))
    lo, hi = sizes[0], sizes[-1]
    verdicts, lines, cross = {}, [], {}
    for t in targets:
        best = [max(p, f) for p, f in zip(acc[t, "linear probe", lo], acc[t, "fine-tune", lo])]
        v1, d1, n1 = SMALL_RULE.judge(best, acc[t, "from scratch", lo])
        v2, d2, n2 = LARGE_RULE.judge(acc[t, "fine-tune", hi], acc[t, "linear probe", hi])
        verdicts[t] = (v1, v2)
        curve = {m: [common.mean(acc[t, m, n]) for n in sizes] for m in METHODS}
        cross[t] = {"scratch reaches fine-tune": crossover(sizes, curve["fine-tune"],
                                                           curve["from scratch"]),
                    "scratch reaches probe": crossover(sizes, curve["linear probe"],
                                                       curve["from scratch"]),
                    "fine-tune passes probe": crossover(sizes, curve["linear probe"],
                                                        curve["fine-tune"])}
        where = "; ".join(f"{k} {_n(v, lo)}" for k, v in cross[t].items())
        lines.append(f"{t}: at {lo}/class best transfer minus scratch {100 * d1:+.1f} points "
                     f"(noise {100 * n1:.1f}): {v1}; at {hi}/class fine-tune minus probe "
                     f"{100 * d2:+.1f} (noise {100 * n2:.1f}): {v2}. Crossovers (images per "
                     f"class): {where}.")
    near = next(iter(targets))
    verdict = combine(list(verdicts[near]))
    far_v = combine(list(verdicts[list(targets)[1]]))
    rows = [{"target": t, "images / class": n,
             **{f"{m} %": common.pm(acc[t, m, n]) for m in METHODS}}
            for t in targets for n in sizes]
    why = (" ".join(lines) + f" The verdict is the near target's; on the far one the same "
           f"rules read {far_v}.")
    return Finding(
        setting=(f"Source: {model_name} trained on Fashion-MNIST classes {SOURCE} "
                 f"(T-shirt, trouser, pullover, dress, coat; {src_epochs} epochs, AdamW, test "
                 f"accuracy {common.pm(source_acc)}%). Targets: classes {TARGET} (sandal, "
                 "shirt, sneaker, bag, ankle boot), which the source never saw, and the same "
                 "images turned 90 degrees and inverted (white background), with "
                 f"{', '.join(map(str, sizes))} labelled training images per class (seeded "
                 "draws) and every test image of those classes. Each method trains "
                 f"{steps} steps (batch up to 128, flips, AdamW, weight decay 0.05): linear "
                 "probe = only a fresh classifier on the frozen source body (lr 1e-2); "
                 "fine-tune = every layer from the source weights (lr 1e-3); from scratch = "
                 "every layer from a random start (lr 1e-2); inputs normalised as the "
                 "source's were."),
        measured=rows, verdict=verdict, why=why,
        caveat=("The source here is small (5 classes, a 60k-parameter LeNet-5), so its "
                "features are less general than an ImageNet network's, and the near target "
                "shares the source's domain; 1000 images per class is \"large\" only at this "
                "scale. Where transfer does not help (the far target), that is the finding."),
        plots={"transfer_small_data.png": _figure(acc, targets, sizes, cross)},
        data={"accuracy": {f"{t}|{m}|{n}": v for (t, m, n), v in acc.items()},
              "source_test_acc": source_acc, "crossovers": cross})


def _n(v, lo: int) -> str:
    if v is None:
        return "nowhere in the range"
    return f"already at {lo}" if v <= lo else f"at ~{v:.0f}"


def _figure(acc, targets, sizes, cross):
    plt = common.plt()
    fig, axes = plt.subplots(1, len(targets), figsize=(11, 4), sharey=True)
    colors = dict(zip(METHODS, ["#6aa84f", "#4a7ab5", "#c46a3a"]))
    for ax, t in zip(axes, targets):
        for m in METHODS:
            ys = [100 * common.mean(acc[t, m, n]) for n in sizes]
            err = [100 * common.spread(acc[t, m, n]) for n in sizes]
            ax.errorbar(sizes, ys, yerr=err, fmt="-o", capsize=3, color=colors[m], label=m)
        x = cross[t]["scratch reaches fine-tune"]
        if x is not None and x > sizes[0]:
            ax.axvline(x, color="grey", ls=":", lw=1)
            ax.text(x, ax.get_ylim()[0] + 2, " scratch catches up", fontsize=8, color="grey")
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(sizes, [str(n) for n in sizes])
        ax.set_xlabel("labelled training images per class")
        ax.set_title(t)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("target test accuracy %")
    axes[0].legend()
    fig.suptitle("Transfer against training from scratch, by the size of the target set")
    fig.tight_layout()
    return common.png(fig)


STUDY = Study(
    name="transfer-small-data",
    title="Transfer helps when the labelled set is small",
    claim="Transfer learning can help when dataset is small. [...] If have a large training "
          "set at hand => freeze a few layers and train the rest. If have a huge dataset: "
          "train the whole NN.",
    source="seed 000, Transfer Learning and State of Computer Vision; seed 003: \"Your "
           "training set is very large: Use the trained weights as initialization\"",
    paper="No single paper number: the lectures' advice (after Yosinski et al. 2014, who "
          "found fine-tuned transferred features beat training from scratch on ImageNet "
          "halves, and that transfer weakens as the tasks grow apart).",
    rule=f"On the near target: {SMALL_RULE.text}; and {LARGE_RULE.text}. The far target is "
         "reported under the same rules.",
    run=run)
