"""Training curves and confusion matrices as PNG (matplotlib, Agg, no pyplot state).

`plot_curves` draws the lectures' "Monitoring Learning Process" plots from RUN/metrics.jsonl:
1. loss, 2. train vs val accuracy (the gap = overfitting), the learning rate, and when the
trainer logged them 3. update/weight ratio per layer (healthy around 1e-3) and
4. activation variance per layer (collapsing towards 0 with depth = bad init).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from cnnzoo import runs
from cnnzoo.runs import read_metrics  # noqa: F401  (cnnzoo.viz exports it from here)
from cnnzoo.utils.io import atomic_path

# The metrics.jsonl keys each curve reads (cnnzoo.runs.METRIC_RECORDS): a step record's
# loss is "loss", an epoch record's "train_loss".
_KEYS = {
    "train_loss": ("train_loss", "loss"),
    "val_loss": ("val_loss",),
    "train_acc": ("train_acc",),
    "val_acc": ("val_acc",),
    "lr": ("lr",),
    "update_ratio": ("update_ratio",),
    "act_var": ("act_var",),
}


def _get(rec: dict, name: str):
    for k in _KEYS[name]:
        if rec.get(k) is not None:
            return rec[k]
    return None


def _series(records: list[dict], name: str, xs: list[float]) -> tuple[list, list]:
    pts = [(x, _get(r, name)) for r, x in zip(records, xs)]
    pts = [(x, v) for x, v in pts if isinstance(v, (int, float)) and math.isfinite(v)]
    return [p[0] for p in pts], [p[1] for p in pts]


def _per_layer(records: list[dict], name: str, xs: list[float]) -> dict[str, tuple[list, list]]:
    out: dict[str, tuple[list, list]] = {}
    for r, x in zip(records, xs):
        d = _get(r, name)
        if isinstance(d, dict):
            for layer, v in d.items():
                if isinstance(v, (int, float)) and v > 0:  # log scale: positive only
                    out.setdefault(layer, ([], []))
                    out[layer][0].append(x)
                    out[layer][1].append(v)
    return out


def _x_positions(records: list[dict]) -> tuple[list[float], str]:
    """x for each record: its epoch; steps are scaled so the last step lands on the last epoch."""
    epochs = [r["epoch"] for r in records if r.get("kind") == "epoch" and "epoch" in r]
    steps = [r["step"] for r in records if r.get("kind") == "step" and "step" in r]
    if not epochs:
        return [float(r.get("step", i)) for i, r in enumerate(records)], "step"
    per_step = max(epochs) / max(steps) if steps and max(steps) > 0 else 0.0
    xs = [
        float(r["epoch"]) if r.get("kind") != "step" and "epoch" in r
        else float(r.get("step", 0)) * per_step
        for r in records
    ]
    return xs, "epoch"


def loss_note(config: dict | None) -> str | None:
    """Why training loss sits above validation loss, when the run's recipe makes it so."""
    train = (config or {}).get("train") or {}
    why = []
    if train.get("label_smoothing"):
        why.append(f"label smoothing {train['label_smoothing']:g}")
    if train.get("augment"):
        why.append(f"augmentation ({train['augment']})")
    if not why:
        return None
    return (f"train loss is measured with {' and '.join(why)},\nvalidation loss without: "
            "train above val is expected")


def plot_curves(metrics_jsonl_path: str | os.PathLike, out_png: str | os.PathLike,
                config: dict | None = None) -> Path:
    """Write the monitoring plots of one run to `out_png` (atomic) and return its path.

    `config`: the run's config.json (default: read from the metrics file's folder, when
    there is one); it says whether the loss panel needs its note on label smoothing and
    augmentation.
    """
    records = runs.read_metrics(metrics_jsonl_path)
    run_dir = Path(metrics_jsonl_path).parent
    if config is None and runs.is_run(run_dir):
        config = runs.read_config(run_dir)
    note = loss_note(config)
    xs, xlabel = _x_positions(records)
    is_step = [r.get("kind") == "step" for r in records]
    step_recs = [r for r, s in zip(records, is_step) if s]
    step_xs = [x for x, s in zip(xs, is_step) if s]
    ep_recs = [r for r, s in zip(records, is_step) if not s]
    ep_xs = [x for x, s in zip(xs, is_step) if not s]

    ratios = _per_layer(records, "update_ratio", xs)
    act_var = _per_layer(records, "act_var", xs)
    panels = ["loss", "acc", "lr"] + (["ratio"] if ratios else []) + (["var"] if act_var else [])
    rows = math.ceil(len(panels) / 2)
    fig = Figure(figsize=(11, 3.6 * rows), layout="constrained")
    axes = fig.subplots(rows, 2, squeeze=False).ravel()
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(f"{Path(metrics_jsonl_path).parent.name}: monitoring the learning process")

    for ax, panel in zip(axes, panels):
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        if panel == "loss":
            x, y = _series(step_recs, "train_loss", step_xs)
            if x:
                ax.plot(x, y, lw=0.6, alpha=0.5, color="C0", label="train (per step)")
            for name, color in (("train_loss", "C0"), ("val_loss", "C1")):
                x, y = _series(ep_recs, name, ep_xs)
                if x:
                    ax.plot(x, y, "o-", ms=3, color=color, label=name.replace("_loss", ""))
            # the note sits between the panel and its title, clear of every curve
            ax.set_title("1. loss", pad=24 if note else 6)
            if note:
                ax.text(0.5, 1.015, note, transform=ax.transAxes, ha="center", va="bottom",
                        fontsize=8, color="0.3", linespacing=1.2)
        elif panel == "acc":
            xt, yt = _series(ep_recs, "train_acc", ep_xs)
            xv, yv = _series(ep_recs, "val_acc", ep_xs)
            if xt:
                ax.plot(xt, yt, "o-", ms=3, label="train")
            if xv:
                ax.plot(xv, yv, "o-", ms=3, label="val")
            both = sorted(set(xt) & set(xv))
            if both:
                t, v = dict(zip(xt, yt)), dict(zip(xv, yv))
                ax.fill_between(both, [t[e] for e in both], [v[e] for e in both], alpha=0.2,
                                color="grey", label="gap (overfitting)")
            ax.set_title("2. train vs val accuracy")
        elif panel == "lr":
            x, y = _series(step_recs, "lr", step_xs)
            if not x:
                x, y = _series(ep_recs, "lr", ep_xs)
            ax.plot(x, y, color="C2")
            if y and min(y) > 0 and max(y) / min(y) > 50:
                ax.set_yscale("log")
            ax.set_title("learning rate")
        elif panel == "ratio":
            for layer, (x, y) in ratios.items():
                ax.plot(x, y, lw=1, label=layer)
            ax.axhspan(3e-4, 3e-3, color="green", alpha=0.12, label="healthy ~1e-3")
            ax.axhline(1e-3, color="green", lw=0.8, ls="--")
            ax.set_yscale("log")
            ax.set_title("3. update / weight ratio per layer")
        elif panel == "var":
            for layer, (x, y) in act_var.items():
                ax.plot(x, y, lw=1, label=layer)
            ax.set_yscale("log")
            ax.set_title("4. activation variance per layer")
        if ax.get_legend_handles_labels()[0]:
            many = panel in ("ratio", "var") and len(ratios or act_var) > 8
            ax.legend(fontsize=6 if many else 8, ncol=2 if many else 1)
    return _save(fig, out_png)


def plot_confusion(
    cm, classes: list[str], out_png: str | os.PathLike, *, title: str | None = None
) -> Path:
    """Confusion matrix [true, predicted] as a PNG: colour = row-normalised rate, text = count."""
    cm = np.asarray(cm, dtype=np.int64)
    k = cm.shape[0]
    rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    side = min(4 + 0.45 * k, 24)
    fig = Figure(figsize=(side + 1.5, side), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of true class")
    if k <= 30:  # tick labels and counts stay legible up to ~30 classes
        ax.set_xticks(range(k), classes, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(k), classes, fontsize=8)
    if k <= 20:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix")
    return _save(fig, out_png)


def _save(fig: Figure, out_png: str | os.PathLike) -> Path:
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(out_png)
