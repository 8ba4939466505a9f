"""Several runs on one page: one results table, the curves overlaid, what their configs
change, and each run's confusion matrix and last filters side by side."""

from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.figure import Figure
from PIL import Image

from cnnzoo.report.html import (
    Raw,
    figure,
    img,
    join,
    monitor_warnings,
    note,
    num,
    page,
    pct,
    rendered,
    section,
    table,
    tag,
)
from cnnzoo.report.run import RunData
from cnnzoo.viz.plots import _series, _x_positions

PANELS = (("train_loss", "val_loss", "loss (train dashed, val solid)", False),
          ("train_acc", "val_acc", "accuracy (train dashed, val solid)", False),
          ("gap", None, "train - val accuracy gap (overfitting)", False),
          ("lr", None, "learning rate", True))


def run_names(dirs: list[Path]) -> list[str]:
    """Folder names; when two are equal, their parents too (runs/a/run vs runs/b/run)."""
    names = [d.resolve().name for d in dirs]
    return ["/".join(d.resolve().parts[-2:]) if names.count(n) > 1 else n
            for d, n in zip(dirs, names)]


def _epoch_series(run: RunData, key: str) -> tuple[list, list]:
    recs = run.epochs
    xs = [float(r.get("epoch", i + 1)) for i, r in enumerate(recs)]
    if key == "gap":
        pts = [(x, r["train_acc"] - r["val_acc"]) for x, r in zip(xs, recs)
               if isinstance(r.get("train_acc"), (int, float))
               and isinstance(r.get("val_acc"), (int, float))]
        return [p[0] for p in pts], [p[1] for p in pts]
    return _series(recs, key, xs)


def _lr_series(run: RunData) -> tuple[list, list]:
    """lr per logged step (the schedule's shape), else per epoch."""
    xs = _x_positions(run.records)[0] if run.records else []
    steps = [(r, x) for r, x in zip(run.records, xs) if r.get("kind") == "step"]
    x, y = _series([r for r, _ in steps], "lr", [x for _, x in steps])
    return (x, y) if x else _epoch_series(run, "lr")


def curves_figure(runs: list[RunData]) -> Figure:
    """2 x 2 panels, one colour per run: loss, accuracy, train - val gap, learning rate."""
    fig = Figure(figsize=(11, 7), layout="constrained")
    for ax, (train_key, val_key, title, log) in zip(fig.subplots(2, 2).ravel(), PANELS):
        for n, run in enumerate(runs):
            style = dict(color=f"C{n % 10}", ms=3)
            if train_key == "lr":
                ax.plot(*_lr_series(run), label=run.name, **style)
                continue
            x, y = _epoch_series(run, train_key)
            xv, yv = _epoch_series(run, val_key) if val_key else ([], [])
            if x:
                ax.plot(x, y, "o--" if val_key else "o-", alpha=0.6 if val_key else 1,
                        label=None if xv else run.name, **style)
            if xv:
                ax.plot(xv, yv, "o-", label=run.name, **style)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ys = [v for line in ax.get_lines() for v in line.get_ydata()]
        if log and ys and min(ys) > 0 and max(ys) / min(ys) > 50:
            ax.set_yscale("log")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    return fig


def results_table(runs: list[RunData]) -> Raw:
    head = ("run", "model", "dataset", "epochs", "params", "best val", "test top-1",
            "test top-5", "trainer's test", "train time", "warnings")
    rows = []
    for run in runs:
        ep, r = run.epochs, run.results
        vals = [e["val_acc"] for e in ep if isinstance(e.get("val_acc"), (int, float))]
        t = ep[-1].get("time") if ep else None
        rows.append((run.name, run.config["model"], run.config.get("dataset", "?"),
                     str(ep[-1].get("epoch")) if ep else "0",
                     f"{sum(p.numel() for p in run.model.parameters()):,}",
                     pct(max(vals)) if vals else "n/a",
                     pct(r["top1"]) if r else "n/a", pct(r.get("top5")) if r else "n/a",
                     pct(run.test_record()), f"{t:.1f} s" if isinstance(t, (int, float))
                     else "n/a", str(len(monitor_warnings(run)))))
    return table(head, rows, numeric=tuple(range(3, 11)), cls="results")


def _flat(config: dict) -> dict:
    out = {}
    for k, v in config.items():
        if k == "train" and isinstance(v, dict):
            out |= {f"train.{a}": b for a, b in v.items()}
        elif k not in ("classes", "mean", "std"):
            out[k] = v
    return out


def config_diff(runs: list[RunData]) -> Raw:
    flats = [_flat(r.config) for r in runs]
    keys = sorted({k for f in flats for k in f})
    # train.out differs by construction; the others repeat the top-level keys
    skip = {"train.out", "train.model", "train.dataset", "train.model_kwargs",
            "train.dataset_kwargs", "train.data_dir"}
    rows = [(k, *(num(f.get(k, "-")) for f in flats)) for k in keys
            if k not in skip and len({repr(f.get(k)) for f in flats}) > 1]
    if not rows:
        return note("The configs are the same (except the output folder).")
    return table(("config key", *(r.name for r in runs)), rows, cls="scroll")


def side_by_side(runs: list[RunData]) -> Raw:
    from cnnzoo.viz.plots import plot_confusion

    cols = []
    for run in runs:
        parts = [tag("h3", run.name)]
        if run.results is not None:
            cm = torch.tensor(run.results["confusion"])
            parts.append(img(rendered(plot_confusion, cm, [str(c) for c in
                                                           run.results["classes"]],
                                      title=f"{run.name}: top-1 {pct(run.results['top1'])}"),
                             f"{run.name} confusion matrix"))
        elif run.test_error:
            parts.append(note(f"No test split: {run.test_error}"))
        filters = sorted((run.path / "filters").glob("epoch_*.png"))
        if filters:
            with Image.open(filters[-1]) as im:
                w = im.size[0]
            parts.append(figure(filters[-1], f"{run.name}: first-layer filters, "
                                f"{filters[-1].stem.replace('_', ' ')}",
                                width=max(w, min(2 * w, 300)), cls="px"))
        for e, m in monitor_warnings(run):
            parts.append(tag("p", f"epoch {e}: {m}", cls="warn"))
        cols.append(tag("div", *parts))
    return tag("div", *cols, cls="cols")


def compare_page(runs: list[RunData]) -> str:
    from cnnzoo.report.html import png_bytes

    sections = [
        ("results", "Results", section("results", "Results", results_table(runs))),
        ("curves", "Curves", section("curves", "Curves overlaid",
                                     img(png_bytes(curves_figure(runs)), "curves of every run"))),
        ("config", "Config differences", section("config", "Config differences",
                                                 config_diff(runs))),
        ("runs", "Side by side", section("runs", "Side by side", side_by_side(runs))),
    ]
    sub = join([f"{len(runs)} runs: ", ", ".join(r.name for r in runs)])
    return page(f"cnnzoo report: {len(runs)} runs", sub, sections)
