"""`cnnzoo data fetch|info NAME`: find (or download and verify) a dataset, describe it."""

from __future__ import annotations

import time
from pathlib import Path


def _load_both(args):
    from cnnzoo.data import load_dataset

    kw = dict(data_dir=args.data_dir, download=not args.no_download)
    return load_dataset(args.name, "train", **kw), load_dataset(args.name, "test", **kw)


def _where(args) -> str:
    from cnnzoo.data import resolve

    if args.name == "synthetic":
        return "(generated in memory)"
    return str(resolve(args.name, args.data_dir, download_ok=not args.no_download))


def cmd_fetch(args) -> int:
    t0 = time.perf_counter()
    where = _where(args)
    train, test = _load_both(args)
    print(f"{train.name}: {where}")
    print(f"  train {len(train)}  test {len(test)}  image {list(train.image_shape)}  "
          f"classes {train.num_classes}  ({time.perf_counter() - t0:.1f} s)")
    return 0


def cmd_info(args) -> int:
    where = _where(args)
    train, test = _load_both(args)
    mean, std = train.channel_stats()
    mb = (train.images.numel() + test.images.numel()) / 2**20
    print(f"{train.name}  ({where})")
    print(f"  train {len(train)}  test {len(test)}  image (C,H,W) {tuple(train.image_shape)}  "
          f"{mb:.1f} MiB as uint8")
    print(f"  channel mean {[round(m, 4) for m in mean]}  std {[round(s, 4) for s in std]}"
          "  (train split, 0..1 scale)")
    counts = train.labels.bincount(minlength=train.num_classes).tolist()
    print(f"  classes ({train.num_classes}):")
    for i, (c, n) in enumerate(zip(train.classes, counts)):
        print(f"    {i:3d}  {c:<24s} {n:6d} train images")
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("data", help="datasets: fetch (find/download/verify) and info")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    for name, fn, hlp in [
        ("fetch", cmd_fetch, "find or download a dataset, verify it, print where it is"),
        ("info", cmd_info, "sizes, classes and per-channel mean/std of a dataset"),
    ]:
        q = dsub.add_parser(name, help=hlp)
        q.add_argument("name", help="mnist, fashion-mnist, cifar10, cifar100 or synthetic")
        q.add_argument("--data-dir", type=Path, default=None,
                       help="folder holding the files (searched first)")
        q.add_argument("--no-download", action="store_true",
                       help="never use the network; fail with what is missing")
        q.set_defaults(func=fn)
