"""`ensembles-of-paths`: delete one block at test time, each in turn (Veit et al. 2016). A ResNet
should degrade gracefully, a plain net of the same depth collapse; both measured with and
without re-estimating the batch-norm statistics after the deletion."""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

from cnnzoo.casestudy import common
from cnnzoo.casestudy.core import Context, Finding, Rule, Study
from cnnzoo.models.resnet import cifar_resnet

RULE = Rule("deleting one block costs the plain net more test accuracy than the ResNet (mean "
            "over the deletable blocks, no batch-norm re-estimation, as in the paper) by more "
            "than 10 points", margin=0.10)


def blocks(model: nn.Module) -> list[tuple[nn.Sequential, int, str]]:
    """(stage, index, name) of every block whose input and output shapes match: deleting it
    leaves the identity (a ResNet's shortcut; nothing at all in a plain net). Downsampling
    blocks have no such stand-in in a plain net, so neither net loses them."""
    out = []
    for s in range(1, 4):
        stage = getattr(model, f"layer{s}")
        for i, b in enumerate(stage):
            if b.downsample is None and b.conv1.stride == (1, 1) and \
                    b.conv1.in_channels == b.conv2.out_channels:
                out.append((s, i, f"{s}.{i}"))
    return out


def delete_each(model, data, device, bn_images) -> dict[str, dict[str, float]]:
    """Test accuracy with each deletable block replaced by the identity, without and with
    batch-norm re-estimation."""
    out = {}
    for s, i, name in blocks(model):
        m = copy.deepcopy(model)
        getattr(m, f"layer{s}")[i] = nn.Identity()
        plain = common.accuracy(m, data, data.test, device)
        common.reestimate_bn(m, data, device, bn_images, after=f"layer{s}.{i}")
        out[name] = {"as is": plain, "BN re-estimated": common.accuracy(m, data, data.test,
                                                                        device)}
    return out


def run(ctx: Context) -> Finding:
    depth = common.pick(ctx, 8, 20, 110)
    per_class, epochs, bs = common.pick(ctx, (6, 1, 32), (500, 5, 128), (None, 164, 128))
    milestones = common.pick(ctx, None, None, [0.5, 0.75])
    augment = common.pick(ctx, "flip", "flip", "flip,crop:4")
    bn_images = common.pick(ctx, 32, 1000, 5000)
    data = common.load(ctx, per_class, test_per_class=common.pick(ctx, 4, 100, None))
    c = data.shape[0]
    nets = {f"ResNet-{depth}": True, f"plain-{depth}": False}
    full = {k: [] for k in nets}
    deleted = {k: [] for k in nets}  # per seed: {block: {"as is": acc, "BN re-estimated": acc}}
    for seed in range(ctx.seeds):
        fits = {}
        for k, residual in nets.items():
            torch.manual_seed(seed)
            fits[k] = common.Fit(cifar_resnet(depth, data.num_classes, c, residual=residual),
                                 data, epochs, ctx.device, seed=seed, batch_size=bs, lr=0.1,
                                 weight_decay=1e-4, augment=augment, milestones=milestones)
        ctx.progress(f"ensembles-of-paths: seed {seed}, training both nets in turns")
        common.train_together(list(fits.values()))
        for k, f in fits.items():
            full[k].append(common.accuracy(f.model, data, data.test, ctx.device))
            ctx.progress(f"  {k}: deleting each block in turn")
            deleted[k].append(delete_each(f.model, data, ctx.device, bn_images))
    modes = ("as is", "BN re-estimated")
    drop = {(k, mode): [full[k][s] - common.mean([d[mode] for d in deleted[k][s].values()])
                        for s in range(ctx.seeds)] for k in nets for mode in modes}
    res, pl = nets
    verdict, d, noise = RULE.judge(drop[pl, "as is"], drop[res, "as is"])
    bn_v, bn_d, bn_noise = RULE.judge(drop[pl, "BN re-estimated"], drop[res, "BN re-estimated"])
    rows = []
    for k in nets:
        for mode in modes:
            worst = [min(v[mode] for v in deleted[k][s].values()) for s in range(ctx.seeds)]
            rows.append({"network": k, "after deletion": mode,
                         "full net acc %": common.pm(full[k]),
                         "mean acc, one block deleted %": common.pm(
                             [full[k][s] - drop[k, mode][s] for s in range(ctx.seeds)]),
                         "mean drop (points)": common.pm(drop[k, mode]),
                         "worst acc %": common.pm(worst)})
    n_blocks = len(deleted[res][0])
    m = {key: common.mean(v) for key, v in drop.items()}
    back = {k: 1 - m[k, modes[1]] / m[k, modes[0]] if m[k, modes[0]] > 0 else 0.0
            for k in nets}
    why = (f"Mean accuracy lost when one of the {n_blocks} deletable blocks goes, plain minus "
           f"ResNet: {100 * d:+.1f} points (noise {100 * noise:.1f}), as in the paper (no "
           f"re-estimation): {verdict}. Re-estimating the batch-norm statistics on "
           f"{bn_images:,} training images after each deletion cuts the mean loss from "
           f"{100 * m[res, modes[0]]:.1f} to {100 * m[res, modes[1]]:.1f} points for the "
           f"ResNet ({100 * back[res]:.0f}% of it back) and from {100 * m[pl, modes[0]]:.1f} "
           f"to {100 * m[pl, modes[1]]:.1f} for the plain net ({100 * back[pl]:.0f}% back); "
           f"the rule then reads {100 * bn_d:+.1f} points (noise {100 * bn_noise:.1f}): {bn_v} "
           "(reported, not part of the verdict). That share is the part of a deletion's "
           "cost that is only the later layers' statistics going stale.")
    return Finding(
        setting=(f"{data.describe()}. CIFAR ResNet-{depth} and plain-{depth} (the same net "
                 f"without shortcuts), SGD momentum 0.9, lr 0.1, weight decay 1e-4, batch {bs}, "
                 f"{augment}, {epochs} epochs. At test time each of the {n_blocks} blocks whose "
                 "input and output shapes match is replaced by the identity in turn (the "
                 "2 downsampling blocks stay: a plain net has nothing to put in their place); "
                 "test accuracy as is, and after re-estimating the running statistics of the "
                 f"batch-norm layers behind the deletion on {bn_images:,} training images."),
        measured=rows, verdict=verdict, why=why,
        caveat=(f"A {depth}-layer net trained for {epochs} epochs has few blocks, each doing a "
                "larger share of the work than one of ResNet-110's 54; the paper's graceful "
                "degradation is a property of many short paths, which a shallow net has fewer "
                "of. The plain net may also not have learned much to lose."),
        plots={"ensembles_of_paths.png": _figure(full, deleted, nets)},
        data={"full_acc": full, "deleted": deleted,
              "mean_drop": {f"{k}|{m}": v for (k, m), v in drop.items()}})


def _figure(full, deleted, nets):
    plt = common.plt()
    fig, ax = plt.subplots(figsize=(10, 4))
    colors = {True: "#4a7ab5", False: "#c46a3a"}
    for k, residual in nets.items():
        names = list(deleted[k][0])
        x = range(len(names))
        for mode, style in (("as is", "-o"), ("BN re-estimated", "--s")):
            y = [100 * common.mean([d[n][mode] for d in deleted[k]]) for n in names]
            ax.plot(x, y, style, color=colors[residual], ms=4, label=f"{k}, {mode}")
        ax.axhline(100 * common.mean(full[k]), color=colors[residual], lw=0.8, ls=":")
    ax.set_xticks(range(len(names)), [f"block {n}" for n in names], rotation=30)
    ax.set_ylabel("test accuracy % (dotted: nothing deleted)")
    ax.set_ylim(0, 100)
    ax.axhline(100 / 10, color="grey", lw=0.6)
    ax.text(0, 11, "chance", color="grey", fontsize=8)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_title("Delete one block at test time: ResNet vs plain net")
    fig.tight_layout()
    return common.png(fig)


STUDY = Study(
    name="ensembles-of-paths",
    title="A ResNet survives losing a block; a plain net does not",
    claim="ResNets are collections of many paths of different length, and shorter paths "
          "predominantly contribute to training",
    source="seed 002, Interpreting ResNets (Veit et al., \"Residual Networks Behave Like "
           "Ensembles of Relatively Shallow Networks\")",
    paper="Veit et al. 2016, fig. 3 (CIFAR-10): deleting any single block of ResNet-110 leaves "
          "its test error close to the full net's (only the downsampling blocks cost more), "
          "while deleting any single layer of a VGG-style plain net drops it to chance. The "
          "paper does not say whether batch-norm statistics were re-estimated.",
    rule=RULE.text + ".",
    run=run)
