"""`cnnzoo eval`, `cnnzoo predict`, `cnnzoo plot`: look at a finished (or running) run."""

from __future__ import annotations

from pathlib import Path

from cnnzoo.cli.args import positive_int


def add_parsers(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a run on the test split (top-1/5, confusion)",
                       description="Top-1/top-5, per-class accuracy and confusion matrix on the "
                       "test split, written to RUN/eval/<dataset>_<tta>_<which>.json and .png.")
    p.add_argument("run", type=Path, metavar="RUN", help="run folder")
    p.add_argument("--dataset", help="dataset name (default: the one the run trained on)")
    p.add_argument("--data-dir", help="dataset folder (default: the run's, then the cache)")
    p.add_argument("--tta", choices=["none", "flip", "10crop"], default="none",
                   help="test-time augmentation: average softmax over views (default none)")
    p.add_argument("--which", choices=["best", "last"], default="best",
                   help="best-validation or last-epoch weights (default best)")
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument("--device", default="auto", help="cpu, cuda, mps or auto (default)")
    p.set_defaults(func=_eval)

    p = sub.add_parser("predict", help="classify image files with a trained run")
    p.add_argument("run", type=Path, metavar="RUN", help="run folder (a model name with "
                   "--pretrained)")
    p.add_argument("--pretrained", action="store_true", help="RUN is a model name: use its "
                   "published ImageNet weights, with their own preprocessing")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (png, jpg, ...)")
    p.add_argument("--topk", type=positive_int, default=5, help="classes to show (default 5)")
    p.add_argument("--which", choices=["best", "last"], default="best")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_predict)

    p = sub.add_parser("plot", help="training curves of a run as PNG (from RUN/metrics.jsonl)")
    p.add_argument("run", type=Path, metavar="RUN", help="run folder")
    p.add_argument("--out", type=Path, metavar="FILE.png",
                   help="output file (default RUN/curves.png)")
    p.set_defaults(func=_plot)


def _eval(args) -> int:
    from cnnzoo.evaluate import evaluate_run

    r = evaluate_run(args.run, dataset=args.dataset, data_dir=args.data_dir, tta=args.tta,
                     which=args.which, batch_size=args.batch_size, device=args.device)
    top5 = f"   top-5 {100 * r['top5']:.2f}%" if r["top5"] is not None else ""
    print(f"{r['model']} ({r['which']} weights) on {r['dataset']} test, {r['n']} images, "
          f"tta {r['tta']} ({r['views']} views), {r['seconds']:.1f} s")
    print(f"top-1 {100 * r['top1']:.2f}% (error {100 * (1 - r['top1']):.2f}%){top5}")
    width = max(len(c) for c in r["classes"])
    print("per-class accuracy:")
    for name, acc in r["per_class"].items():
        print(f"  {name:<{width}}  " + ("   n/a" if acc is None else f"{100 * acc:6.2f}%"))
    print(f"wrote {r['files']['json']}\nwrote {r['files']['confusion_png']}")
    return 0


def _predict(args) -> int:
    from cnnzoo.evaluate import predict_images
    from cnnzoo.evaluate.pretrained import predict_pretrained

    if args.pretrained:
        results = predict_pretrained(str(args.run), args.images, topk=args.topk,
                                     device=args.device)
    else:
        results = predict_images(args.run, args.images, topk=args.topk, which=args.which,
                                 device=args.device)
    for path, top in results:
        print(path)
        for name, p in top:
            print(f"  {100 * p:6.2f}%  {name}")
    return 0


def _plot(args) -> int:
    from cnnzoo.runs import METRICS
    from cnnzoo.viz import plot_curves

    out = args.out or args.run / "curves.png"
    print(f"wrote {plot_curves(args.run / METRICS, out)}")
    return 0
