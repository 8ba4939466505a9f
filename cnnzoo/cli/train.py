"""`cnnzoo train MODEL --dataset NAME ...`: train with the model's recipe, flags override.

Precedence: flags > --config FILE (JSON or YAML) > the recipe (recipes.py).
Data-parallel: `torchrun --nproc_per_node N -m cnnzoo train ...`.
"""

from __future__ import annotations

import argparse

from cnnzoo.cli.args import knob, positive_int


def _bool(s: str) -> bool:
    if s.lower() in ("1", "true", "yes", "on"):
        return True
    if s.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"must be true or false, got {s!r}")


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "train", help="train a zoo model with its paper's recipe",
        description="Train MODEL on a dataset with the recipe of its paper (scaled down for "
        "28/32-pixel data); every recipe value can be overridden. Writes a run folder "
        "(config.json, weights, trainer state, metrics.jsonl, first-layer filters).")
    p.add_argument("model", nargs="?", metavar="MODEL", help="zoo model (see `cnnzoo models`)")
    p.add_argument("--dataset", help="mnist, fashion-mnist (default), cifar10, cifar100, "
                   "synthetic, or folder (your photos in --data-dir: DIR/<class>/*.jpg, or "
                   "DIR/train/<class>/ + DIR/test/<class>/)")
    p.add_argument("--data-dir", help="folder holding the dataset files")
    p.add_argument("--image-size", type=positive_int, metavar="PIXELS",
                   help="--dataset folder: resize + centre-crop photos to this (default: the "
                   "model's input size)")
    p.add_argument("--knob", type=knob, action="append", metavar="KEY=VALUE",
                   help="a builder option of the model, repeatable (e.g. --knob depth=16 "
                   "--knob widen_factor=4; see `cnnzoo info MODEL`)")
    g = p.add_argument_group("recipe (default: the model's, see cnnzoo/train/recipes.py)")
    g.add_argument("--epochs", type=positive_int)
    g.add_argument("--batch-size", type=positive_int, help="global batch size")
    g.add_argument("--lr", type=float, help="base learning rate")
    g.add_argument("--optimizer", choices=["sgd", "adamw", "rmsprop"])
    g.add_argument("--momentum", type=float)
    g.add_argument("--nesterov", type=_bool, metavar="BOOL")
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--schedule",
                   choices=["step", "plateau", "cosine", "onecycle", "linear", "constant"])
    g.add_argument("--warmup", type=float, metavar="EPOCHS", help="linear lr warm-up")
    g.add_argument("--milestones", type=lambda s: [int(v) for v in s.split(",")],
                   metavar="E1,E2", help="'step' schedule: lr *= gamma at these epochs")
    g.add_argument("--gamma", type=float, help="lr factor of step/plateau schedules")
    g.add_argument("--patience", type=int, help="plateau: epochs without gain before decay")
    g.add_argument("--label-smoothing", type=float)
    g.add_argument("--dropout", type=float)
    g.add_argument("--aux-weight", type=float, help="auxiliary-classifier loss weight")
    g.add_argument("--augment", metavar="SPEC", help="e.g. 'flip,crop:4' ('' for none)")
    g.add_argument("--clip-grad", type=float, help="clip the gradient norm to this")
    r = p.add_argument_group("runtime")
    r.add_argument("--val-fraction", type=float, help="validation split of train (0.1)")
    r.add_argument("--seed", type=int)
    r.add_argument("--seeds", type=_seeds, metavar="S1,S2,...",
                   help="train independent members, one per seed, into OUT/seed<S> (an "
                   "ensemble: cnnzoo ensemble OUT)")
    r.add_argument("--device", help="cpu, cuda, mps or auto (default)")
    r.add_argument("--amp", action="store_const", const=True, help="mixed precision")
    r.add_argument("--channels-last", type=_bool, metavar="BOOL",
                   help="NHWC memory format (default: on, except on MPS; faster on CPU "
                   "as measured in BENCHMARKS.md)")
    r.add_argument("--compile", action="store_const", const=True, help="torch.compile")
    r.add_argument("--sync-bn", action="store_const", const=True,
                   help="torchrun: BatchNorm statistics over the global batch (SyncBatchNorm; "
                   "CUDA only)")
    r.add_argument("--threads", type=positive_int, help="torch CPU threads")
    r.add_argument("--out", metavar="RUN", help="run folder (default runs/MODEL_DATASET)")
    r.add_argument("--resume", action="store_const", const=True,
                   help="continue the run in --out from its last checkpoint")
    r.add_argument("--checkpoint-every", type=positive_int, metavar="STEPS",
                   help="also checkpoint every STEPS steps (default: at epoch ends)")
    r.add_argument("--log-every", type=positive_int, metavar="STEPS")
    r.add_argument("--no-monitor", dest="monitor", action="store_const", const=False,
                   help="skip update ratios, activation stats and filter images")
    r.add_argument("--tensorboard", action="store_const", const=True)
    r.add_argument("--eval-test", action="store_const", const=True,
                   help="report test accuracy of the best weights at the end")
    r.add_argument("--time-limit", type=float, metavar="SECONDS")
    r.add_argument("--config", metavar="FILE", help="run config (JSON or YAML)")
    p.set_defaults(func=_train)


_NOT_CONFIG = ("command", "func", "config", "model", "seeds")


def _seeds(s: str) -> list[int]:
    try:
        seeds = [int(v) for v in s.split(",") if v.strip()]
    except ValueError:
        seeds = []
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"must be distinct integers like 0,1,2, got {s!r}")
    return seeds


def _train(args) -> int:
    from cnnzoo.errors import CnnzooError
    from cnnzoo.train import TrainConfig, read_config_file, train

    base = read_config_file(args.config) if args.config else {}
    flags = {k: v for k, v in vars(args).items() if k not in _NOT_CONFIG and v is not None}
    if "knob" in flags:  # builder options add to (and override) the config file's
        flags["model_kwargs"] = {**base.get("model_kwargs", {}), **dict(flags.pop("knob"))}
    if "image_size" in flags:
        size = flags.pop("image_size")
        flags["dataset_kwargs"] = {**base.get("dataset_kwargs", {}), "image_size": [size, size]}
    merged = {**base, **flags}
    model = args.model or base.get("model")
    if not model:
        raise CnnzooError("MODEL: give a model name (or 'model' in --config)")
    merged["model"] = model
    cfg = TrainConfig.from_dict(merged, args.config or "flags")
    if args.seeds is None:
        return _show(train(cfg))
    if args.seed is not None:
        raise CnnzooError("--seeds: give --seed or --seeds, not both")
    import dataclasses
    from pathlib import Path

    parent = Path(cfg.out or f"runs/{cfg.model}_{cfg.dataset}")
    for s in args.seeds:  # one after another: each member uses every core
        code = _show(train(dataclasses.replace(cfg, seed=s, out=str(parent / f"seed{s}"))))
        if code:
            return code
    print(f"members:        {len(args.seeds)} in {parent} (cnnzoo ensemble {parent})")
    return 0


def _show(res) -> int:
    print(f"run:            {res.run_dir}")
    print(f"epochs:         {res.epochs_done}  ({res.step} steps, {res.train_time:.1f} s)")
    if res.best_epoch:
        print(f"best val acc:   {res.best_val_acc:.2%}  (epoch {res.best_epoch})")
    else:
        print("best val acc:   - (no epoch finished yet)")
    if res.test_acc is not None:
        print(f"test acc:       {res.test_acc:.2%}  (best weights)")
    if res.stopped == "interrupted":
        print("interrupted: continue with --resume")
        return 130
    return 0
