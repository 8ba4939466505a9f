"""Time spent waiting for data during real training steps (target: < 5% of step time).

Trains a small network for a few dozen SGD steps with `build_loader` feeding augmented,
normalised batches, with the background prefetch thread on and off, and reports
loader.wait_time / total time: the median over `--repeats` interleaved runs (not the best:
on a shared CPU the best run is an outlier). Fashion-MNIST (LeNet-5) is used when it is
installed; the 32x32x3 case uses the synthetic dataset (CIFAR-sized) with ResNet-20.

Run: .venv/bin/python benchmarks/bench_loader.py [--steps 40] [--batch 128] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from bench_augment import machine_info  # this folder is on sys.path when run as a script

from cnnzoo.data import build_augment, build_loader, load_dataset
from cnnzoo.errors import DataError
from cnnzoo.models.registry import create_model


def _run(model_name, ds, spec, batch, steps, prefetch):
    torch.manual_seed(0)
    c = ds.image_shape[0]
    model = create_model(model_name, num_classes=ds.num_classes, in_chans=c)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    mean, std = ds.channel_stats()
    aug = build_augment(spec, ds.image_shape[1:], c, pca_from=ds if "pca" in spec else None)
    dl = build_loader(ds, batch, shuffle=True, augment=aug, mean=mean, std=std, device="cpu",
                      drop_last=True, prefetch=prefetch)
    model.train()
    n, t0 = 0, None
    for x, y in dl:
        if n == 3:  # skip warm-up steps
            t0, dl.wait_time = time.perf_counter(), 0.0
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += 1
        if n == steps + 3:
            break
    total = time.perf_counter() - t0
    return total / steps, dl.wait_time / total


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3,
                    help="runs per setting, interleaved; the median is reported")
    args = ap.parse_args(argv)
    print(f"command: {' '.join([sys.executable.split('/')[-1], *sys.argv])}")
    print(machine_info())
    print(f"batch {args.batch}, {args.steps} timed steps, median of {args.repeats} runs\n")
    try:
        fm = load_dataset("fashion-mnist", download=False)
    except DataError:
        fm = load_dataset("synthetic", channels=1, size=28, num_samples=8192)
    cases = [("lenet5", fm, "flip,crop:4"),
             ("resnet20", load_dataset("synthetic", num_samples=8192),
              "flip,crop:4,color:0.1,pca:0.1")]
    print("| model | data | augment | prefetch | step (ms) | waiting for data |")
    print("|---|---|---|---|---:|---:|")
    ok = True
    for model_name, ds, spec in cases:
        runs = {True: [], False: []}
        for _ in range(args.repeats):
            for prefetch in (True, False):
                runs[prefetch].append(_run(model_name, ds, spec, args.batch, args.steps,
                                           prefetch))
        for prefetch in (True, False):
            step = statistics.median(r[0] for r in runs[prefetch])
            frac = statistics.median(r[1] for r in runs[prefetch])
            if prefetch:
                ok &= frac < 0.05
            print(f"| {model_name} | {ds.name} {'x'.join(map(str, ds.image_shape))} | `{spec}` "
                  f"| {'on' if prefetch else 'off'} | {step * 1e3:.1f} | {frac:.1%} |")
    print(f"\nat the end: {machine_info().rsplit('; ', 1)[1]}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
