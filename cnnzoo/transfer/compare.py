"""The transfer report: on one source and one target, every way of reusing the source side by
side (linear probe, features + softmax, fine-tuning from each stage, full fine-tuning) and
the same network trained from scratch; accuracy against the cut layer as a plot.

    OUT/report.md  OUT/results.json  OUT/accuracy_vs_cut.png  OUT/runs/<name>/ (each a run;
    `runs_dir` puts them elsewhere)

The cut is how much of the body stays as the source made it: nothing (full), up to each
stage (finetune), all of it (linear, features).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from cnnzoo.errors import CnnzooError
from cnnzoo.transfer.body import stage_names
from cnnzoo.transfer.modes import transfer
from cnnzoo.transfer.source import Source
from cnnzoo.transfer.target import Target


def plan(source: Source, stages=None) -> list[tuple[str, str, str | None]]:
    """(name, mode, freeze_to) of every run the report makes."""
    all_stages = stage_names(source.model)
    stages = all_stages if stages is None else list(stages)
    bad = [s for s in stages if s not in all_stages]
    if bad:
        raise CnnzooError(f"--stages: {source.model_name} has no stage {', '.join(bad)} "
                          f"(its stages: {', '.join(all_stages)})")
    return ([("linear", "linear", None), ("features", "features", None)]
            + [(f"finetune-{s}", "finetune", s) for s in stages]
            + [("full", "full", None), ("scratch", "scratch", None)])


def pretrain_source(model: str, dataset: str, out, *, classes=None, data_dir=None,
                    dataset_kwargs: dict | None = None, seed: int = 0, device: str = "auto",
                    overrides: dict | None = None, progress: bool | None = None
                    ) -> tuple[Source, float]:
    """Train `model` with its recipe on `classes` of `dataset` into `out`: a source for a
    report that transfers to the other classes. Returns (the source, training seconds)."""
    from cnnzoo.data import load_dataset
    from cnnzoo.data.subset import check_classes, subset
    from cnnzoo.train import TrainConfig, train
    from cnnzoo.transfer.source import load_source

    full = load_dataset(dataset, "train", data_dir=data_dir, **(dataset_kwargs or {}))
    ds = subset(full, classes) if classes is not None else full
    check_classes(ds)
    cfg = TrainConfig.from_dict({"model": model, "dataset": dataset, "data_dir": data_dir,
                                 "dataset_kwargs": dict(dataset_kwargs or {}), "seed": seed,
                                 "device": device, "out": str(out), "progress": progress,
                                 **(overrides or {})})
    res = train(cfg, data=ds.split(cfg.val_fraction, seed=seed))
    return load_source(out), res.train_time


def compare(source: Source, target: Target, out, *, stages=None, runs_dir=None,
            on_result=None, meta: dict | None = None, write: bool = True, **kw) -> dict:
    """Run `plan(source, stages)` into `runs_dir` (default OUT/runs/) and (with `write`)
    write the report (module doc); `kw` go to `transfer` (seed, device, train_overrides,
    softmax, cache_dir ...)."""
    out = Path(out)
    runs_dir = Path(runs_dir) if runs_dir is not None else out / "runs"
    todo = plan(source, stages)
    busy = [n for n, _, _ in todo if (runs_dir / n).exists()]
    if busy:
        raise CnnzooError(f"--out {out}: already holds runs ({', '.join(busy)}); choose "
                          "another folder")
    cut_names = ["none (full)", *stage_names(source.model), "body (linear)"]
    rows = []
    t0 = time.perf_counter()
    for name, mode, freeze_to in todo:
        r = transfer(source, target, mode, out=runs_dir / name, freeze_to=freeze_to, **kw)
        cut = {"full": 0, "finetune": None, "scratch": None}.get(mode, len(cut_names) - 1)
        if mode == "finetune":
            cut = cut_names.index(freeze_to)
        row = {"name": name, "cut": cut, **asdict(r)}
        rows.append(row)
        if on_result is not None:
            on_result(row)
    scratch = next(r for r in rows if r["mode"] == "scratch")
    reused = [r for r in rows if r["mode"] != "scratch"]
    key = "test_acc" if scratch["test_acc"] is not None else "val_acc"
    best = max(reused, key=lambda r: r[key])
    result = {"source": source.spec, "runs_dir": str(runs_dir), "source_model": source.model_name,
              "source_sha256": source.sha256, "dataset": target.train.name,
              "classes": target.classes, "n_train": len(target.train),
              "n_test": None if target.test is None else len(target.test),
              "notes": list(target.notes), "metric": key, "cuts": cut_names, "rows": rows,
              "best": best["name"], "best_acc": best[key], "scratch_acc": scratch[key],
              "transfer_beats_scratch": best[key] > scratch[key],
              "seconds": time.perf_counter() - t0, **(meta or {})}
    if write:
        result["files"] = write_report(result, out)
    return result


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def report_markdown(r: dict) -> str:
    metric = "test" if r["metric"] == "test_acc" else "validation"
    lines = [f"# Transfer from {r['source_model']} ({r['source']}) to {r['dataset']}", ""]
    for k, label in (("command", "Command"), ("machine", "Machine")):
        if r.get(k):
            lines += [f"{label}: `{r[k]}`" if k == "command" else f"{label}: {r[k]}", ""]
    if r.get("source_seconds") is not None:
        lines += [f"Pretraining the source: {r['source_seconds']:.1f} s "
                  f"({r.get('source_note', '')})".rstrip(" ()"), ""]
    if r.get("wall_seconds") is not None:
        lines += [f"Wall time of the whole command: {r['wall_seconds']:.1f} s "
                  f"(the comparison itself {r['seconds']:.1f} s)", ""]
    lines += [f"Target: {r['n_train']} training images ({len(r['classes'])} classes: "
              f"{', '.join(r['classes'])}), {r['n_test'] or 'no'} test images. Source weights "
              f"sha256 {r['source_sha256'][:16]}.", ""]
    if r["notes"]:
        lines += ["Adapted: " + "; ".join(r["notes"]) + ".", ""]
    verdict = "beats" if r["transfer_beats_scratch"] else "does NOT beat"
    lines += [f"**Transfer {verdict} training from scratch**: best reuse `{r['best']}` "
              f"{_pct(r['best_acc'])} {metric} top-1 against {_pct(r['scratch_acc'])} from "
              f"scratch ({100 * (r['best_acc'] - r['scratch_acc']):+.2f} points).", "",
              "| run | mode | frozen up to | trained params | frozen params | val top-1 | "
              "test top-1 | time |", "|---|---|---|---|---|---|---|---|"]
    for row in r["rows"]:
        cut = "-" if row["cut"] is None else r["cuts"][row["cut"]]
        lines.append(f"| {row['name']} | {row['mode']} | {cut} | {row['trainable']:,} | "
                     f"{row['frozen']:,} | {_pct(row['val_acc'])} | {_pct(row['test_acc'])} | "
                     f"{row['seconds']:.1f} s |")
    feats = next((x for x in r["rows"] if x["mode"] == "features"), None)
    if feats is not None:
        d = feats["details"]
        lines += ["", f"`features` ran the frozen body once ({d['extract_seconds']:.1f} s, "
                  f"{d['dim']}-dim vectors of `{d['layer']}`, cached in {d['cache']}; reused: "
                  f"{', '.join(k for k, v in d['reused'].items() if v) or 'none'}), then "
                  f"{d['epochs']} softmax epochs."]
    lines += ["", "![accuracy against the cut layer](accuracy_vs_cut.png)", ""]
    return "\n".join(lines)


def plot_cut(r: dict):
    from matplotlib.figure import Figure

    key = r["metric"]
    fig = Figure(figsize=(6.5, 4))
    ax = fig.add_subplot()
    pts = sorted((row["cut"], 100 * row[key]) for row in r["rows"]
                 if row["mode"] in ("full", "finetune", "linear"))
    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label="fine-tuned above the cut")
    for row in r["rows"]:
        if row["mode"] == "features":
            ax.plot(row["cut"], 100 * row[key], marker="s", ls="none", color="C2",
                    label="features + softmax")
        if row["mode"] == "scratch":
            ax.axhline(100 * row[key], ls="--", color="C3", label="from scratch")
    ax.set_xticks(range(len(r["cuts"])), r["cuts"], rotation=20, ha="right")
    ax.set_xlabel("frozen up to (the cut layer)")
    ax.set_ylabel(f"{'test' if key == 'test_acc' else 'val'} top-1 (%)")
    ax.set_title(f"{r['source_model']} -> {r['dataset']} ({r['n_train']} training images)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def write_report(r: dict, out: Path) -> dict:
    from cnnzoo.utils.io import atomic_path, atomic_write_json, atomic_write_text

    files = {"json": str(out / "results.json"), "report": str(out / "report.md"),
             "plot": str(out / "accuracy_vs_cut.png")}
    with atomic_path(out / "accuracy_vs_cut.png") as tmp:
        plot_cut(r).savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    atomic_write_json(out / "results.json", {**r, "files": files})
    atomic_write_text(out / "report.md", report_markdown(r))
    return files
