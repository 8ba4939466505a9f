"""`cnnzoo report`: one self-contained HTML page of a run, or of several side by side."""

from __future__ import annotations

from pathlib import Path


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "report", help="one self-contained HTML page of a run (or several side by side)",
        description="Config and recipe, curves, monitor warnings, test accuracy, confusion "
        "matrix, per-class accuracy, filters across epochs, the per-layer table, test images "
        "with Grad-CAM and top patches, in one HTML file with every image inlined (opens "
        "offline). Several runs: one results table, curves overlaid. Nothing is retrained; "
        "the test split is read for the examples (and the accuracy when `cnnzoo eval` has not "
        "written it yet).")
    p.add_argument("runs", type=Path, nargs="+", metavar="RUN",
                   help="run folder(s), or a folder whose subfolders are runs")
    p.add_argument("-o", "--out", type=Path, default=Path("report.html"), metavar="FILE.html",
                   help="output file (default report.html)")
    p.add_argument("--which", choices=["best", "last"], default="best",
                   help="best-validation or last-epoch weights (default best)")
    p.add_argument("--device", default="auto", help="cpu, cuda, mps or auto (default)")
    p.set_defaults(func=_report)


def _report(args) -> int:
    from cnnzoo.report import build_report
    from cnnzoo.utils.device import pick_device

    out = build_report(args.runs, args.out, which=args.which, device=pick_device(args.device))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0
