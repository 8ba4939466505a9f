"""`cnnzoo demo`: the main job in one command — the zoo at a glance, then LeNet-5 trained on
Fashion-MNIST with its default recipe, evaluated on the test split, with plots to look at."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

# The landmarks of the lectures' "comparing complexity" figure, in historical order.
LANDMARKS = ["lenet5", "alexnet", "zfnet", "vgg16", "googlenet", "inception_v3", "resnet50",
             "resnet152", "densenet121", "squeezenet1_0"]


def add_parsers(sub) -> None:
    p = sub.add_parser("demo", help="the main job: the zoo, then train + evaluate LeNet-5 on "
                       "Fashion-MNIST")
    p.add_argument("--out", type=Path, default=Path("runs/demo-lenet5"),
                   help="run folder (default runs/demo-lenet5; an existing one is replaced)")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    p.add_argument("--data-dir", default=None, help="where Fashion-MNIST lives (optional)")
    p.set_defaults(func=_demo)


def _si(n: float) -> str:
    return f"{n / 1e9:.2f}G" if n >= 1e8 else f"{n / 1e6:.2f}M"


def _zoo_table() -> None:
    from cnnzoo.analysis import profile
    from cnnzoo.models import list_models, model_info

    names = list_models()
    families = sorted({model_info(n).family for n in names})
    print(f"== the zoo: {len(names)} networks in {len(families)} families "
          f"(`cnnzoo models` lists them all)\n")
    print(f"{'model':<14} {'year':>4} {'params':>9} {'MACs':>8} {'input':>10} "
          f"{'top-5 err (lectures)':>20} {'top-1 acc (ref)':>15}")
    for name in LANDMARKS:
        info = model_info(name)
        p = profile(name, training=False)
        err = "-" if info.top5_err is None else f"{info.top5_err:g}%"
        acc = "-" if info.ref_top1_acc is None else f"{info.ref_top1_acc:.1f}%"
        size = "x".join(map(str, info.input_size))
        print(f"{name:<14} {info.year:>4} {p.params / 1e6:>8.2f}M {_si(p.macs):>8} "
              f"{size:>10} {err:>20} {acc:>15}")
    print("(top-5: the ILSVRC entries the lectures quote; top-1: single-crop accuracy of "
          "reference weights, `cnnzoo info NAME` names the source)\n")


def _demo(args: argparse.Namespace) -> int:
    import shutil

    from cnnzoo.evaluate import evaluate_run
    from cnnzoo.train import TrainConfig, train

    t0 = time.perf_counter()
    _zoo_table()
    if args.out.exists() and (args.out / "config.json").exists():
        shutil.rmtree(args.out)  # a demo run is always fresh; only replace a real run folder
    print("== training LeNet-5 (modern form: ReLU + max-pool) on Fashion-MNIST, default recipe")
    cfg = TrainConfig(model="lenet5", dataset="fashion-mnist", data_dir=args.data_dir,
                      epochs=args.epochs, out=str(args.out))
    result = train(cfg)
    print("\n== evaluating the best weights on the 10,000 test images")
    report = evaluate_run(args.out, tta="none")
    print(f"test top-1 {100 * report['top1']:.2f}%   top-5 {100 * report['top5']:.2f}%")
    per_class = report.get("per_class") or {}
    if per_class:
        worst = sorted(per_class.items(), key=lambda kv: kv[1])[:3]
        print("hardest classes: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in worst))
    print(f"\nrun folder: {args.out}/ (config.json, weights.safetensors, metrics.jsonl, "
          f"filters/, eval/)")
    print(f"training wall time {result.train_time:.1f} s; demo total "
          f"{time.perf_counter() - t0:.1f} s")
    print(f"next: cnnzoo plot {args.out}   cnnzoo predict {args.out} IMAGE.png   "
          f"cnnzoo summary lenet5")
    return 0
