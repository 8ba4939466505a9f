"""`ensembling`: 1 vs 3 vs 5 independently trained nets, each with plain, flip and 10-crop
testing (AlexNet's 7-CNN ensemble; the lectures' "multi-crop at test time")."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnzoo.casestudy import common
from cnnzoo.casestudy.core import Context, Finding, Rule, Study, combine

SIZES = (1, 3, 5)
# Views of tta_views(x, "10crop"): 4 corners + centre (index 4, the image itself: the crop
# pads by H//8), then the same five mirrored (the mirrored image is index 9).
MODES = {"none": [4], "flip": [4, 9], "10-crop": list(range(10))}
ENSEMBLE_RULE = Rule("the 5-net ensemble's test accuracy (no test-time views) exceeds a single "
                     "net's (the mean of its 5 members) by more than the spread")
CROP_RULE = Rule("10-crop testing raises a single net's test accuracy by more than the spread")


@torch.no_grad()
def view_probs(models, data: common.Data, device) -> torch.Tensor:
    """Softmax of every model on every 10-crop view of the test set: [M, 10, N, K]."""
    from cnnzoo.data import tta_views
    from cnnzoo.evaluate.evaluate import Normalized

    nets = [Normalized(m.eval(), data.mean, data.std) for m in models]  # views of 0..1 images
    out = [[[] for _ in range(10)] for _ in nets]
    for x, _ in common.loader(data, data.test, 500, device, normalise=False):
        for v in range(10):
            xv = tta_views(x, "10crop", views=[v])[0]
            for j, m in enumerate(nets):
                out[j][v].append(F.softmax(m(xv).float(), 1).cpu())
    return torch.stack([torch.stack([torch.cat(v) for v in per]) for per in out])


def accuracies(probs: torch.Tensor, labels: torch.Tensor) -> dict[tuple[int, str], float]:
    """(ensemble size, mode) -> accuracy; size 1 is the mean over the members on their own."""
    def acc(p):
        return (p.argmax(1) == labels).float().mean().item()

    out = {}
    for mode, views in MODES.items():
        out[1, mode] = common.mean([acc(probs[j, views].mean(0)) for j in range(len(probs))])
        for n in SIZES[1:]:
            out[n, mode] = acc(probs[:n, views].mean((0, 1)))
    return out


def run(ctx: Context) -> Finding:
    per_class, epochs = common.pick(ctx, (6, 1), (1500, 6), (None, 90))
    model_name = common.pick(ctx, "lenet5", "lenet5", "resnet20")
    data = common.load(ctx, per_class, test_per_class=common.pick(ctx, 4, None, None))
    c, h, _ = data.shape
    augment = f"flip,crop:{h // 8}"  # the shift the 10 crops make (tta_views pads by H//8)
    members = max(SIZES)
    labels = torch.as_tensor(data.test.labels)
    results = []  # per seed: {(size, mode): acc}
    from cnnzoo.models import create_model

    if model_name == "lenet5":  # the recipe this repo measured for LeNet-5 (docs/training.md)
        kw = dict(optimizer="adamw", lr=1e-2, weight_decay=0.1, batch_size=256, warmup=0.3)
        recipe = "AdamW lr 1e-2 (warm-up 30% then cosine), weight decay 0.1, batch 256"
    else:  # He et al.'s CIFAR schedule
        kw = dict(lr=0.1, weight_decay=1e-4, batch_size=128, milestones=[0.5, 0.75])
        recipe = "SGD momentum 0.9, lr 0.1 /10 at 50% and 75%, weight decay 1e-4, batch 128"
    for seed in range(ctx.seeds):
        fits = []
        for j in range(members):  # seed s trains its own 5 members: seeds 100 s + j
            torch.manual_seed(100 * seed + j)
            model = create_model(model_name, num_classes=data.num_classes, in_chans=c)
            fits.append(common.Fit(model, data, epochs, ctx.device, seed=100 * seed + j,
                                   augment=augment, **kw))
        ctx.progress(f"ensembling: seed {seed}, training {members} {model_name} members")
        common.train_together(fits)
        results.append(accuracies(view_probs([f.model for f in fits], data, ctx.device),
                                  labels))
    acc = {k: [r[k] for r in results] for k in results[0]}
    ens_v, ens_d, ens_n = ENSEMBLE_RULE.judge(acc[5, "none"], acc[1, "none"])
    crop_v, crop_d, crop_n = CROP_RULE.judge(acc[1, "10-crop"], acc[1, "none"])
    rows = [{"nets": n, **{f"{mode} err %": common.pm([1 - a for a in acc[n, mode]])
                           for mode in MODES}} for n in SIZES]
    why = (f"Error of one net {common.pm([1 - a for a in acc[1, 'none']])}% -> 5 nets "
           f"{common.pm([1 - a for a in acc[5, 'none']])}%: accuracy {100 * ens_d:+.2f} points "
           f"(noise {100 * ens_n:.2f}): {ens_v}. 10-crop on one net: {100 * crop_d:+.2f} "
           f"points (noise {100 * crop_n:.2f}): {crop_v}. 5 nets with 10 crops: "
           f"{common.pm([1 - a for a in acc[5, '10-crop']])}% error.")
    return Finding(
        setting=(f"{data.describe()}. {members} {model_name} nets per seed, each from its own "
                 f"initialisation and data order; {recipe}, augmentation `{augment}`, "
                 f"{epochs} epochs. An "
                 "ensemble averages the members' softmax outputs; test-time views: none, the "
                 "image and its mirror (flip), or 4 corner and 1 centre crop of the image "
                 f"padded by {h // 8} pixels, and their mirrors (10-crop). The 1-net row is the "
                 "mean over the 5 members on their own; 3 nets are the first three."),
        measured=rows, verdict=combine([ens_v, crop_v]), why=why,
        caveat=("Averaging removes only the errors the members do not share, and small nets "
                "trained on the same small dataset may share more of theirs than AlexNet's "
                "did on ImageNet. The four corner crops are the training crops' extreme "
                "shifts, which training drew rarely (1 in 49 offsets each), so on 28x28 "
                "images they can show the net something it seldom saw; AlexNet's crops were "
                "224 of 256 pixels."),
        plots={"ensembling.png": _figure(acc)},
        data={"accuracy": {f"{n}|{m}": v for (n, m), v in acc.items()}})


def _figure(acc):
    plt = common.plt()
    fig, ax = plt.subplots(figsize=(7, 3.8))
    colors = {"none": "#888888", "flip": "#4a7ab5", "10-crop": "#c46a3a"}
    for mode in MODES:
        err = [100 * (1 - common.mean(acc[n, mode])) for n in SIZES]
        sp = [100 * common.spread(acc[n, mode]) for n in SIZES]
        ax.errorbar(SIZES, err, yerr=sp, fmt="-o", capsize=4, color=colors[mode],
                    label=f"test-time views: {mode}")
    ax.set_xticks(SIZES)
    ax.set_xlabel("nets in the ensemble")
    ax.set_ylabel("test error %")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("Ensembles and test-time views (bars: spread over seeds)")
    fig.tight_layout()
    return common.png(fig)


STUDY = Study(
    name="ensembling",
    title="Ensembles and multi-crop testing lower the error",
    claim="Ensembling: Train several(3~15) NN independently, then average their outputs. - "
          "Multi-crop at test time: Predict on multiple versions of test images and average "
          "results. e.g. 10-crop at test time",
    source="seed 000, Tips for doing well on benchmarks; seed 001, AlexNet: \"7 CNN "
           "ensemble: 18.2% -> 15.4%\"",
    paper="Krizhevsky et al. 2012, Table 2 (ILSVRC-2012 top-5 error, each net tested on 10 "
          "patches): 1 CNN 18.2%, 5 CNNs 16.4%, 7 CNNs (two pre-trained on ImageNet 2011) 15.4%. "
          "No number for 10-crop against one crop.",
    rule=f"{ENSEMBLE_RULE.text}; and {CROP_RULE.text}.",
    run=run)
