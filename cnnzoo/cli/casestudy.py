"""`cnnzoo casestudy NAME|all [--budget small|full] [--seeds N] [--out DIR]`: rerun a lecture
claim and write report.md, report.html, results.json and its plots."""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnzoo.cli.args import positive_int


def add_parsers(sub) -> None:
    p = sub.add_parser("casestudy", help="rerun a lecture's claim as an experiment with a verdict")
    p.add_argument("name", nargs="?", help="a study (see --list), or 'all'")
    p.add_argument("--list", action="store_true", help="list the studies and their claims")
    p.add_argument("--budget", default="small",
                   help="small (minutes on a 2-core CPU), full (the paper's setting) or "
                   "tiny (seconds; a smoke test)")
    p.add_argument("--seeds", type=positive_int, default=None,
                   help="independent repetitions (default: the study's own)")
    p.add_argument("--out", type=Path, default=None,
                   help="report folder (default casestudies/NAME; for 'all', the parent)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    p.add_argument("--data-dir", default=None, help="where the datasets live (optional)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from cnnzoo.casestudy import STUDIES, get_study, run_all, run_study

    if args.list or not args.name:
        for s in STUDIES.values():
            print(f"{s.name:<26} {s.title}")
        return 0 if args.list else 2
    kw = dict(budget=args.budget, seeds=args.seeds, device=args.device, data_dir=args.data_dir)
    if args.name == "all":
        results, index = run_all(out=args.out or Path("casestudies"), **kw)
        for r in results:
            print(f"{r['study']:<26} {r['verdict']:<14} ({r['wall_time_s']:.0f} s)")
        print(f"index: {index}")
        return 0
    get_study(args.name)  # an unknown name fails before anything runs
    r = run_study(args.name, out=args.out, **kw)
    print(f"{args.name}: {r['verdict']}  ({r['wall_time_s']:.1f} s)")
    print(r["why"])
    print(f"report: {(args.out or Path('casestudies') / args.name) / 'report.md'}")
    return 0
