"""Every zoo model at its small input: MACs against measured latency, eager and the inference
path side by side (`cnnzoo bench --zoo`). Writes DIR/zoo.json, DIR/zoo.md and DIR/zoo.png.

MACs predict latency only roughly: SqueezeNet's 1x1 convolutions and ResNeXt's grouped
convolutions do little arithmetic per byte moved, so they sit above the line of constant
GFLOP/s in the plot; big dense 3x3 convolutions (VGG) sit below it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch

from cnnzoo.bench.machine import describe, machine_info
from cnnzoo.errors import CnnzooError
from cnnzoo.utils.io import atomic_path, atomic_write_json, atomic_write_text
from cnnzoo.utils.timing import interleaved


def small_setting(name: str) -> tuple[dict, tuple[int, int, int]]:
    """(knobs, input size) of a model's cheapest input: the small stem at 32 px for the
    ImageNet networks that have one, else the registered input size."""
    from cnnzoo.models.registry import model_info

    info = model_info(name)
    if info.small_input:
        return {"small_input": True}, (info.input_size[0], 32, 32)
    return {}, tuple(info.input_size)


def bench_one(name: str, *, batch: int, device, rounds: int, min_time: float) -> dict:
    """One row: MACs, params, eager and inference-path ms per batch, what the path did."""
    from cnnzoo.bench.measure import build, macs_per_image
    from cnnzoo.infer import optimize_for_inference
    from cnnzoo.models.registry import model_info

    knobs, size = small_setting(name)
    model, size = build(name, size, knobs, device)
    x = torch.randn(batch, *size, device=device)
    fast = optimize_for_inference(model, input_size=size, batch_size=batch)

    def eager():
        with torch.no_grad():
            return model(x)

    t = interleaved({"eager": eager, "path": lambda: fast(x)}, rounds=rounds,
                    min_time=min_time, warmup=1, device=device)
    fold = fast.info.fold
    return {
        "model": name, "family": model_info(name).family, "input_size": list(size),
        "knobs": knobs, "macs": macs_per_image(model, size),
        "params": sum(p.numel() for p in model.parameters()),
        "eager_ms": 1e3 * t["eager"].median, "path_ms": 1e3 * t["path"].median,
        "eager_spread": t["eager"].spread, "path_spread": t["path"].spread,
        "speedup": t["eager"].median / t["path"].median,
        "channels_last": fast.info.channels_last,
        "bn_folded": len(fold.folded) if fold else 0,
        "bn_total": len(fold.folded) + len(fold.not_folded) if fold else 0,
    }


def bench_zoo(out_dir: str | os.PathLike, *, batch: int = 8, pattern: str = "*",
              device=None, rounds: int = 3, min_time: float = 0.1,
              progress: Callable[[str], None] | None = None) -> dict:
    """Bench every registered model matching `pattern` at its small input; write the table
    (JSON + Markdown) and the plot into `out_dir`. Returns the JSON summary."""
    from cnnzoo.bench.measure import setup
    from cnnzoo.models.registry import list_models

    names = list_models(pattern)
    if not names:
        raise CnnzooError(f"--models {pattern!r} matches no registered model")
    device, notes = setup(device)
    rows = []
    for name in names:
        try:
            row = bench_one(name, batch=batch, device=device, rounds=rounds, min_time=min_time)
        except Exception as e:  # one model failing must not lose the other rows
            row = {"model": name, "error": f"{type(e).__name__}: {str(e).splitlines()[0]}"}
        rows.append(row)
        if progress:
            progress(format_row(row))
    out = Path(out_dir)
    files = {"json": str(out / "zoo.json"), "markdown": str(out / "zoo.md"),
             "plot": str(out / "zoo.png")}
    summary = {"machine": machine_info(device), "batch": batch, "notes": notes, "rows": rows,
               "files": files}
    atomic_write_json(files["json"], summary)
    atomic_write_text(files["markdown"], format_table(summary))
    plot_zoo(summary, files["plot"])
    return summary


def format_row(r: dict) -> str:
    if "error" in r:
        return f"{r['model']}: failed ({r['error']})"
    return (f"{r['model']}: {r['macs'] / 1e6:,.1f} MMACs, eager {r['eager_ms']:.2f} ms, "
            f"path {r['path_ms']:.2f} ms ({r['speedup']:.2f}x, "
            f"{'channels-last' if r['channels_last'] else 'NCHW'}, "
            f"BN {r['bn_folded']}/{r['bn_total']} folded)")


def format_table(summary: dict) -> str:
    rows = summary["rows"]
    ok = [r for r in rows if "error" not in r]
    lines = [describe(summary["machine"]), "",
             f"Batch {summary['batch']}, each model at its small input; ms per batch, medians "
             "of interleaved rounds (spread in brackets).", "",
             "| model | input | MMACs/image | params | eager ms | inference path ms | "
             "path / eager | format | BN folded |",
             "|---|---|---:|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | failed: {r['error']} | | | | | | | |")
            continue
        lines.append(
            f"| {r['model']} | {'x'.join(map(str, r['input_size']))} | {r['macs'] / 1e6:,.1f} "
            f"| {r['params'] / 1e6:,.2f}M | {r['eager_ms']:.2f} ({100 * r['eager_spread']:.0f}%)"
            f" | {r['path_ms']:.2f} ({100 * r['path_spread']:.0f}%) | {r['speedup']:.2f}x | "
            f"{'channels-last' if r['channels_last'] else 'NCHW'} | "
            f"{r['bn_folded']}/{r['bn_total']} |")
    slower = [r["model"] for r in ok if r["speedup"] < 1.0]
    lines += ["", f"Inference path slower than eager: {', '.join(slower) or 'none'}."]
    return "\n".join(lines) + "\n"


def plot_zoo(summary: dict, out_png: str | os.PathLike) -> Path:
    """MACs per image (x, log) against measured ms per batch (y, log), inference path filled,
    eager hollow, with the line of the median GFLOP/s: above it, slower than MACs say."""
    from matplotlib.figure import Figure

    ok = [r for r in summary["rows"] if "error" not in r]
    fig = Figure(figsize=(12, 8))
    ax = fig.add_subplot()
    families = sorted({r["family"] for r in ok})
    cmap = {f: c for f, c in zip(families, _colours(len(families)))}
    for fam in families:
        rs = [r for r in ok if r["family"] == fam]
        ax.scatter([r["macs"] for r in rs], [r["path_ms"] for r in rs], s=22,
                   color=cmap[fam], label=fam, zorder=3)
        ax.scatter([r["macs"] for r in rs], [r["eager_ms"] for r in rs], s=22,
                   facecolors="none", edgecolors=cmap[fam], linewidths=0.6, zorder=2)
    for r in ok:
        ax.annotate(r["model"], (r["macs"], r["path_ms"]), fontsize=5.5,
                    xytext=(3, 2), textcoords="offset points")
    if ok:
        batch = summary["batch"]
        rates = sorted(2 * r["macs"] * batch / (r["path_ms"] / 1e3) for r in ok)
        rate = rates[len(rates) // 2]
        xs = [min(r["macs"] for r in ok), max(r["macs"] for r in ok)]
        ax.plot(xs, [2 * m * batch / rate * 1e3 for m in xs], "--", color="grey", lw=0.8,
                label=f"median {rate / 1e9:,.1f} GFLOP/s")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("MACs per image (analysis profile)")
    ax.set_ylabel(f"measured ms per batch of {summary['batch']} (filled: inference path, "
                  "hollow: eager)")
    ax.set_title("MACs against measured latency, every zoo model at its small input\n"
                 + summary["machine"]["cpu"] + f", {summary['machine']['threads']} threads")
    ax.grid(True, which="both", lw=0.3, alpha=0.5)
    ax.legend(fontsize=7, loc="upper left")
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return Path(out_png)


def _colours(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]
