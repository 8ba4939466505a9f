"""`cnnzoo ensemble RUN... [--tta flip|10crop] [--average prob|logit] [-o DIR]`."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

from cnnzoo.cli.args import positive_int


def tta_list(text: str) -> list[str]:
    import argparse

    modes = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in modes if t not in ("none", "flip", "10crop")]
    if bad or not modes:
        raise argparse.ArgumentTypeError(f"must be none, flip, 10crop or a comma list of them, "
                                         f"got {text!r}")
    return list(dict.fromkeys(modes))


def command_meta(t0: float) -> dict:
    """What a written report says about how it was made: the command, machine, wall time."""
    from cnnzoo.casestudy.core import machine, machine_line

    return {"command": "cnnzoo " + shlex.join(sys.argv[1:]),
            "machine": machine_line(machine()), "wall_seconds": time.perf_counter() - t0}


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "ensemble", help="evaluate runs as an ensemble (members, average, oracle, ECE, TTA)",
        description="Each member and their average on the test split: top-1/top-5, "
        "calibration error (ECE), oracle accuracy (any member right), pairwise disagreement "
        "and the gain as members are added. RUN may be a parent folder of member runs "
        "(`cnnzoo train --seeds 0,1,2 --out RUN`).")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders (or their parent)")
    p.add_argument("--dataset", help="dataset name (default: the members')")
    p.add_argument("--data-dir", help="dataset folder (default: the members', then the cache)")
    p.add_argument("--tta", type=tta_list, default=["none"], metavar="MODES",
                   help="test-time views: none, flip, 10crop, or a comma list to compare "
                   "them (default none)")
    p.add_argument("--average", choices=["prob", "logit"], default="prob",
                   help="average softmax probabilities (default) or logits")
    p.add_argument("--which", choices=["best", "last"], default="best")
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument("--view-chunk", type=positive_int, default=1, metavar="V",
                   help="views run through the network at once (memory: V x batch images)")
    p.add_argument("--device", default="auto")
    p.add_argument("-o", "--out", metavar="DIR",
                   help="write results.json, report.md and gain.png here")
    p.set_defaults(func=_ensemble)


def _pct(v) -> str:
    return "    -" if v is None else f"{100 * v:6.2f}%"


def _ensemble(args) -> int:
    from cnnzoo.ensemble import evaluate_ensemble

    t0 = time.perf_counter()
    kw = dict(dataset=args.dataset, data_dir=args.data_dir, tta=args.tta,
              average=args.average, which=args.which, batch_size=args.batch_size,
              view_chunk=args.view_chunk, device=args.device)
    r = evaluate_ensemble(args.runs, **kw)
    if args.out:
        from cnnzoo.ensemble.evaluate import write_report

        r.update(command_meta(t0))
        r["files"] = write_report(r, Path(args.out))
    print(f"{len(r['runs'])} members on {r['dataset']} test ({r['n']} images), "
          f"average {r['average']}")
    width = max(len(p) for p in r["runs"] + ["ensemble"])
    for t, s in r["tta"].items():
        print(f"tta {t} ({s['views']} views, {s['seconds']:.1f} s)   top-1    top-5     ECE")
        for path, m in zip(r["runs"], s["members"]):
            print(f"  {path:<{width}}  {_pct(m['top1'])}  {_pct(m['top5'])}  "
                  f"{_pct(m['ece'])}")
        e = s["ensemble"]
        print(f"  {'ensemble':<{width}}  {_pct(e['top1'])}  {_pct(e['top5'])}  {_pct(e['ece'])}")
        gains = "  ".join(f"{g['members']}: {100 * g['mean']:.2f}%" for g in s["gain_curve"])
        print(f"  oracle {100 * s['oracle']:.2f}%   vs best member "
              f"{100 * s['gain_over_best']:+.2f} points   mean disagreement "
              f"{100 * s['mean_disagreement']:.2f}%   gain (mean over subsets) {gains}")
    for f in (r.get("files") or {}).values():
        print(f"wrote {f}")
    return 0
