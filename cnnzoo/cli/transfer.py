"""`cnnzoo transfer`, `cnnzoo features`, `cnnzoo transfer-report`: reuse a trained network."""

from __future__ import annotations

import time
from pathlib import Path

from cnnzoo.cli.args import positive_int

_SOURCE = ("a run folder, a weights file (cnnzoo safetensors, or torchvision-format .pth/"
           ".safetensors with --model NAME) or pretrained:NAME")


def _source_and_target(p, *, source_optional: bool = False) -> None:
    p.add_argument("source", nargs="?" if source_optional else None, metavar="SOURCE",
                   help=_SOURCE)
    p.add_argument("--model", help="the network of a torchvision-format weights file")
    p.add_argument("--dataset", required=True, help="mnist, fashion-mnist, cifar10, cifar100, "
                   "synthetic, or folder (your photos in --data-dir: DIR/<class>/*.jpg, or "
                   "DIR/train/<class>/ + DIR/test/<class>/)")
    p.add_argument("--data-dir", help="folder holding the dataset files or photos")
    p.add_argument("--classes", metavar="SPEC", help="keep these classes, relabelled 0..k-1 "
                   "(e.g. 5-9, or Sandal,Bag)")
    p.add_argument("--per-class", type=positive_int, metavar="N",
                   help="keep N training images of each class (a seeded draw)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="cpu, cuda, mps or auto (default)")
    p.add_argument("--cache-dir", help="feature cache (default: the cnnzoo cache /features)")
    p.add_argument("--chunk", type=positive_int, default=8192, metavar="N",
                   help="feature vectors per cache shard (default 8192)")


def _training(p) -> None:
    g = p.add_argument_group("training (default: the model's recipe, with a batch and "
                             "epochs for the target's size)")
    g.add_argument("--epochs", type=positive_int)
    g.add_argument("--batch-size", type=positive_int)
    g.add_argument("--lr", type=float, help="the head's learning rate")
    g.add_argument("--optimizer", choices=["sgd", "adamw", "rmsprop"])
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--augment", metavar="SPEC", help="e.g. 'flip,crop:4' ('' for none)")
    g.add_argument("--body-lr-mult", type=float, metavar="F",
                   help="the body's lr as a fraction of the head's (finetune 0.1, full 1)")
    g.add_argument("--val-fraction", type=float, default=0.1)
    g.add_argument("--softmax-epochs", type=positive_int, default=50,
                   help="--mode features: epochs of the softmax classifier (default 50)")


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "transfer", help="reuse a trained network on a new dataset (linear/features/finetune/"
        "full)", description="Transfer SOURCE to a dataset. linear: the body frozen (batch-"
        "norm statistics too), a new classifier trained; features: the frozen body runs once "
        "into a feature cache, a softmax classifier learns from the vectors; finetune: frozen "
        "up to --freeze-to STAGE, the body at --body-lr-mult x the head's lr; full: "
        "everything from the pretrained start; scratch: the same network from random "
        "weights. Another channel count or image size is adapted (said in the output).")
    _source_and_target(p)
    p.add_argument("--mode", required=True,
                   choices=["linear", "features", "finetune", "full", "scratch"])
    p.add_argument("--freeze-to", metavar="STAGE", help="--mode finetune: the last frozen stage")
    p.add_argument("--layer", default="pre_logits",
                   help="--mode features: the layer whose output is the vector (default "
                   "pre_logits, the classifier's input)")
    p.add_argument("--pool", choices=["avg", "max", "flatten"], default="avg",
                   help="--mode features: a feature map's spatial pooling (default avg)")
    p.add_argument("--out", required=True, metavar="RUN", help="the new run folder")
    _training(p)
    p.set_defaults(func=_transfer)

    p = sub.add_parser(
        "features", help="off-the-shelf feature vectors of any named layer, to a .npy",
        description="Run SOURCE's frozen network over a dataset and write one vector per image "
        "from --layer (feature maps pooled over space, --pool) to -o FILE.npy, with the labels "
        "in FILE.labels.npy and a description in FILE.json. Cached by (weights, layer, "
        "dataset, preprocessing): a rerun reads the cache.")
    _source_and_target(p)
    p.add_argument("--layer", required=True,
                   help="pre_logits (what feeds the classifier) or any module name")
    p.add_argument("--pool", choices=["avg", "max", "flatten"], default="avg")
    p.add_argument("--split", choices=["train", "test"], default="train")
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument("-o", "--out", required=True, metavar="FILE.npy")
    p.set_defaults(func=_features)

    p = sub.add_parser(
        "transfer-report", help="every transfer mode and from-scratch side by side, with a "
        "report", description="On one source and one target: linear probe, features + "
        "softmax, fine-tuning from each stage, full fine-tuning and training from scratch, "
        "side by side (OUT/report.md, results.json, accuracy_vs_cut.png, OUT/runs/). "
        "--pretrain MODEL --pretrain-classes SPEC first trains the source on other classes "
        "of the same dataset (into RUNS/source).")
    _source_and_target(p, source_optional=True)
    p.add_argument("--pretrain", metavar="MODEL", help="train this zoo model as the source")
    p.add_argument("--pretrain-classes", metavar="SPEC",
                   help="the classes the source learns (e.g. 0-4)")
    p.add_argument("--pretrain-epochs", type=positive_int, help="default: the recipe's")
    p.add_argument("--stages", type=lambda s: [v for v in s.split(",") if v], metavar="S1,S2",
                   help="fine-tune from these stages (default: every stage)")
    p.add_argument("-o", "--out", required=True, metavar="DIR")
    p.add_argument("--runs-dir", metavar="DIR",
                   help="where the runs (and a --pretrain source) go (default OUT/runs)")
    _training(p)
    p.set_defaults(func=_report)


def _overrides(args) -> dict:
    keys = ("epochs", "batch_size", "lr", "optimizer", "weight_decay", "augment")
    return {k: getattr(args, k) for k in keys if getattr(args, k) is not None}


def _load(args, source=None):
    from cnnzoo.transfer import load_source, load_target

    if source is None:
        source = load_source(args.source, model=args.model)
    target = load_target(source, args.dataset, args.data_dir, classes=args.classes,
                         per_class=args.per_class, seed=args.seed)
    return source, target


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def _show(r) -> None:
    cut = f" (frozen up to {r.freeze_to})" if r.freeze_to else ""
    print(f"{r.mode}{cut}: {r.trainable:,} parameters trained, {r.frozen:,} kept; "
          f"val {_pct(r.val_acc)}  test {_pct(r.test_acc)}  {r.seconds:.1f} s")


def _kw(args) -> dict:
    return dict(body_lr_mult=args.body_lr_mult, train_overrides=_overrides(args),
                softmax={"epochs": args.softmax_epochs}, cache_dir=args.cache_dir,
                chunk=args.chunk, val_fraction=args.val_fraction, seed=args.seed,
                device=args.device)


def _transfer(args) -> int:
    from cnnzoo.transfer.modes import transfer

    source, target = _load(args)
    r = transfer(source, target, args.mode, out=args.out, freeze_to=args.freeze_to,
                 layer=args.layer, pool=args.pool, **_kw(args))
    for note in r.notes:
        print(f"adapted: {note}")
    _show(r)
    print(f"run: {r.run_dir}" if r.run_dir else f"results: {Path(args.out) / 'transfer.json'}"
          f" ({r.details.get('no_run_folder')})")
    return 0


def _features(args) -> int:
    from cnnzoo.transfer.extract import extract
    from cnnzoo.transfer.target import adapted_model
    from cnnzoo.utils.device import pick_device
    from cnnzoo.utils.io import atomic_write_json

    source, target = _load(args)
    ds = target.train if args.split == "train" else target.test
    if ds is None:
        from cnnzoo.errors import DataError

        raise DataError(f"--split test: {args.data_dir} has no test/ (or val/) folder")
    model = adapted_model(source, target)
    fs, reused = extract(model, ds, source_sha256=source.sha256, split=args.split,
                         mean=target.mean, std=target.std, layer=args.layer, pool=args.pool,
                         cache_dir=args.cache_dir, chunk=args.chunk,
                         batch_size=args.batch_size, device=pick_device(args.device),
                         preprocess={"size": list(target.input_size), "adapt": [
                             n for n in target.notes if "channel" in n]})
    out, labels = fs.write_npy(Path(args.out))
    meta = Path(out).with_suffix(".json")
    atomic_write_json(meta, {"source": source.spec, "source_sha256": source.sha256,
                             "layer": args.layer, "pool": args.pool, "dataset": ds.name,
                             "split": args.split, "n": fs.n, "dim": fs.dim,
                             "classes": fs.classes, "notes": target.notes,
                             "cache": str(fs.root), "features": str(out),
                             "labels": str(labels)})
    for note in target.notes:
        print(f"adapted: {note}")
    how = "read from the cache" if reused else "computed"
    print(f"{fs.n} x {fs.dim} features of {args.layer} ({how}: {fs.root})")
    print(f"wrote {out}\nwrote {labels}\nwrote {meta}")
    return 0


def _report(args) -> int:
    from cnnzoo.cli.ensemble import command_meta
    from cnnzoo.errors import CnnzooError
    from cnnzoo.transfer.compare import compare, pretrain_source, write_report

    t0 = time.perf_counter()
    if (args.source is None) == (args.pretrain is None):
        raise CnnzooError("give a SOURCE, or --pretrain MODEL (with --pretrain-classes)")
    out = Path(args.out)
    runs_dir = Path(args.runs_dir) if args.runs_dir else out / "runs"
    meta = {}
    source = None
    if args.pretrain:
        over = {"epochs": args.pretrain_epochs} if args.pretrain_epochs else {}
        source, seconds = pretrain_source(
            args.pretrain, args.dataset, runs_dir / "source", classes=args.pretrain_classes,
            data_dir=args.data_dir, seed=args.seed, device=args.device, overrides=over)
        meta = {"source_seconds": seconds,
                "source_note": f"{args.pretrain} on {args.dataset} classes "
                               f"{args.pretrain_classes or 'all'}"}
        print(f"source: {source.spec} ({seconds:.1f} s)")
    source, target = _load(args, source)
    for note in target.notes:
        print(f"adapted: {note}")

    def show(row):
        print(f"{row['name']:<22} val {_pct(row['val_acc'])}  test {_pct(row['test_acc'])}  "
              f"{row['seconds']:.1f} s", flush=True)

    r = compare(source, target, out, stages=args.stages, runs_dir=runs_dir, on_result=show,
                meta=meta, write=False, **_kw(args))
    r.update(command_meta(t0))
    r["files"] = write_report(r, out)
    verdict = "beats" if r["transfer_beats_scratch"] else "does not beat"
    print(f"transfer {verdict} scratch: {r['best']} {_pct(r['best_acc'])} vs "
          f"{_pct(r['scratch_acc'])}")
    for f in r["files"].values():
        print(f"wrote {f}")
    return 0
