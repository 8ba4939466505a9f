"""`evaluate_ensemble(runs, ...)`: each member and their average on a test split, with
test-time views: top-1/top-5, calibration error, oracle accuracy, pairwise disagreement and
the gain as members are added; written as results.json, report.md and gain.png.

Members are run folders, or parents of them (`runs/ens` for runs/ens/seed0, seed1, ...);
they must classify the same classes from the same inputs (cnnzoo.runs.check_compatible).
Each member normalises the 0..1 test images with its own run's mean and std.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from cnnzoo.ensemble import metrics as M
from cnnzoo.ensemble.predict import member_scores
from cnnzoo.errors import CnnzooError
from cnnzoo.evaluate.metrics import topk_accuracy


def _scores_summary(probs: torch.Tensor, labels: torch.Tensor, bins: int) -> dict:
    acc = topk_accuracy(probs, labels, ks=(1, 5))
    return {"top1": acc[1], "top5": acc.get(5),
            "ece": M.expected_calibration_error(probs, labels, bins)}


def summarize(scores: torch.Tensor, labels: torch.Tensor, average: str = "prob",
              bins: int = 15) -> dict:
    """Every number of the module doc from members' scores [M, N, K] and labels [N]."""
    probs = M.member_probs(scores, average)
    preds = probs.argmax(-1)
    members = [_scores_summary(p, labels, bins) for p in probs]
    ens = _scores_summary(M.combine(scores, average), labels, bins)
    dis = M.disagreement(preds)
    m = len(members)
    pairs = [dis[i, j].item() for i in range(m) for j in range(i + 1, m)]
    best = max(r["top1"] for r in members)
    return {"members": members, "ensemble": ens, "oracle": M.oracle_accuracy(preds, labels),
            "disagreement": dis.tolist(),
            "mean_disagreement": sum(pairs) / len(pairs) if pairs else 0.0,
            "best_member_top1": best, "gain_over_best": ens["top1"] - best,
            "gain_curve": M.gain_curve(scores, labels, average)}


def evaluate_ensemble(runs, *, dataset: str | None = None, data_dir: str | None = None,
                      tta=("none",), average: str = "prob", which: str = "best",
                      batch_size: int = 256, view_chunk: int = 1, bins: int = 15,
                      device=None, out=None, meta: dict | None = None) -> dict:
    """The ensemble of `runs` on the test split of `dataset` (default the members'), for
    each test-time augmentation in `tta`; with `out`, written there (module doc)."""
    from cnnzoo.data import build_loader
    from cnnzoo.evaluate.evaluate import Normalized, view_count
    from cnnzoo.runs import check_dataset, load_runs, test_set
    from cnnzoo.utils.device import pick_device

    tta = [tta] if isinstance(tta, str) else list(tta)
    for t in tta:
        view_count(t)  # a bad mode fails before any work
    if average not in M.AVERAGES:
        raise CnnzooError(f"--average must be one of {', '.join(M.AVERAGES)}, got {average!r}")
    device = pick_device(device) if not isinstance(device, torch.device) else device
    members = load_runs(runs, which=which, device=device)
    if len(members) < 2:
        raise CnnzooError(f"an ensemble needs at least 2 runs; {members[0][2]} is one")
    config0 = members[0][1]
    ds = test_set(config0, dataset, data_dir)
    for _, config, path in members:
        check_dataset(ds, config, path)
    nets = [Normalized(m, c["mean"], c["std"]).eval() for m, c, _ in members]
    c = config0["input_size"][0]
    loader = build_loader(ds, batch_size, shuffle=False, mean=[0.0] * c, std=[1.0] * c,
                          device=device, prefetch=False)  # 0..1: each member normalises
    result = {"runs": [str(p) for _, _, p in members],
              "models": [cfg["model"] for _, cfg, _ in members], "dataset": ds.name,
              "split": "test", "n": len(ds), "classes": list(config0["classes"]),
              "average": average, "which": which, "view_chunk": view_chunk, "ece_bins": bins,
              "tta": {}, **(meta or {})}
    for t in tta:
        t0 = time.perf_counter()
        scores, labels = member_scores(nets, loader, t, average, view_chunk)
        summary = summarize(scores, labels, average, bins)
        summary.update(views=view_count(t), seconds=round(time.perf_counter() - t0, 2))
        result["tta"][t] = summary
    if out is not None:
        result["files"] = write_report(result, Path(out))
    return result


# --- the report ---------------------------------------------------------------------------

def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def report_markdown(r: dict) -> str:
    names = [Path(p).name for p in r["runs"]]
    lines = [f"# Ensemble of {len(names)} {', '.join(sorted(set(r['models'])))} runs on "
             f"{r['dataset']} ({r['split']}, {r['n']} images)", ""]
    if r.get("command"):
        lines += [f"Command: `{r['command']}`", ""]
    if r.get("machine"):
        lines += [f"Machine: {r['machine']}", ""]
    if r.get("wall_seconds") is not None:
        lines += [f"Wall time: {r['wall_seconds']:.1f} s", ""]
    lines += [f"Members: {', '.join(r['runs'])}. Averaging: {r['average']} "
              f"({'mean softmax' if r['average'] == 'prob' else 'softmax of mean logits'}); "
              f"{r['which']} weights; ECE over {r['ece_bins']} equal-width confidence bins.", ""]
    for t, s in r["tta"].items():
        lines += [f"## Test-time augmentation: {t} ({s['views']} view{'s' * (s['views'] > 1)}, "
                  f"{s['seconds']:.1f} s)", "",
                  "| | top-1 | top-5 | ECE |", "|---|---|---|---|"]
        for name, m in zip(names, s["members"]):
            lines.append(f"| {name} | {_pct(m['top1'])} | {_pct(m['top5'])} | "
                         f"{100 * m['ece']:.2f}% |")
        e = s["ensemble"]
        lines += [f"| **ensemble** | **{_pct(e['top1'])}** | {_pct(e['top5'])} | "
                  f"{100 * e['ece']:.2f}% |", "",
                  f"Oracle (any member right): {_pct(s['oracle'])}. Ensemble minus best member: "
                  f"{100 * s['gain_over_best']:+.2f} points. Mean pairwise disagreement: "
                  f"{_pct(s['mean_disagreement'])}.", "",
                  "Gain as members are added (top-1):", "",
                  "| members | first k | mean over subsets | min | max |", "|---|---|---|---|---|"]
        lines += [f"| {g['members']} | {_pct(g['first'])} | {_pct(g['mean'])} | "
                  f"{_pct(g['min'])} | {_pct(g['max'])} |" for g in s["gain_curve"]]
        lines.append("")
    if len(r["tta"]) > 1:
        base = r["tta"].get("none")
        lines += ["## The effect of test-time augmentation", "",
                  "| views | mean member top-1 | ensemble top-1 | ensemble ECE | vs none |",
                  "|---|---|---|---|---|"]
        for t, s in r["tta"].items():
            mean = sum(m["top1"] for m in s["members"]) / len(s["members"])
            delta = ("-" if base is None or t == "none" else
                     f"{100 * (s['ensemble']['top1'] - base['ensemble']['top1']):+.2f} points")
            lines.append(f"| {t} | {_pct(mean)} | {_pct(s['ensemble']['top1'])} | "
                         f"{100 * s['ensemble']['ece']:.2f}% | {delta} |")
        lines.append("")
    return "\n".join(lines)


def plot_gain(r: dict):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.8))
    ax = fig.add_subplot()
    for t, s in r["tta"].items():
        k = [g["members"] for g in s["gain_curve"]]
        ax.plot(k, [100 * g["mean"] for g in s["gain_curve"]], marker="o",
                label=f"tta {t} (mean over subsets)")
        ax.fill_between(k, [100 * g["min"] for g in s["gain_curve"]],
                        [100 * g["max"] for g in s["gain_curve"]], alpha=0.15)
        ax.axhline(100 * s["oracle"], ls=":", lw=1, color=ax.lines[-1].get_color())
    ax.set_xlabel("members in the ensemble")
    ax.set_ylabel("test top-1 (%)")
    ax.set_xticks(k)
    ax.set_title(f"{r['dataset']}: ensemble gain (dotted: oracle)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def write_report(r: dict, out: Path) -> dict:
    """out/results.json, out/report.md, out/gain.png; returns their paths."""
    from cnnzoo.utils.io import atomic_path, atomic_write_json, atomic_write_text

    files = {"json": str(out / "results.json"), "report": str(out / "report.md"),
             "plot": str(out / "gain.png")}
    with atomic_path(out / "gain.png") as tmp:
        plot_gain(r).savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    atomic_write_json(out / "results.json", {**r, "files": files})
    atomic_write_text(out / "report.md", report_markdown(r))
    return files
