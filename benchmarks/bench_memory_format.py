"""Channels-last (NHWC) against NCHW on this machine: why the trainer turns it on by default.

For each model: images/s of a training step (SGD, forward + backward + update) and of
inference (eval mode, no grad), in both memory formats, measured in alternation (so drift on
a shared machine hits both alike); each figure is the median of --repeats windows.

    .venv/bin/python benchmarks/bench_memory_format.py [--seconds 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from bench_augment import machine_info  # this folder is on sys.path when run as a script

from cnnzoo.models.registry import create_model

# (model, knobs, input C x H x W, batch, train?) : the trainer's small nets and the task's
# ImageNet reference point (ResNet-50 inference).
CASES = [
    ("lenet5", {}, (1, 28, 28), 256, True),
    ("resnet20", {}, (1, 28, 28), 128, True),
    ("vgg_cs324", {}, (3, 32, 32), 128, True),
    ("resnet50", {}, (3, 224, 224), 16, False),
]


def _rate(model, x, y, train: bool, seconds: float) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9) if train else None

    def step():
        if train:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        else:
            with torch.inference_mode():
                model(x)

    step()  # warm-up: oneDNN picks and caches its kernels on the first call
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        n += len(x)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="timed seconds per window")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(machine_info())
    rows = []
    for name, knobs, (c, h, w), batch, train in CASES:
        torch.manual_seed(0)
        base = create_model(name, num_classes=10, in_chans=c, **knobs)
        base.train(train)
        x = torch.randn(batch, c, h, w)
        y = torch.randint(0, 10, (batch,))
        rates = {"NCHW": [], "NHWC": []}
        for _ in range(args.repeats):
            for fmt, mf in (("NCHW", torch.contiguous_format), ("NHWC", torch.channels_last)):
                model = base.to(memory_format=mf)
                rates[fmt].append(_rate(model, x.contiguous(memory_format=mf), y, train,
                                        args.seconds))
        med = {k: statistics.median(v) for k, v in rates.items()}
        what = "train step" if train else "inference"
        rows.append((name, f"{c}x{h}x{w}", batch, what, med["NCHW"], med["NHWC"]))
        print(f"  {name} {what}: NCHW {med['NCHW']:,.0f}  NHWC {med['NHWC']:,.0f} img/s",
              flush=True)
    print("\n| model | input | batch | measured | NCHW (img/s) | NHWC (img/s) | NHWC / NCHW |")
    print("|---|---|---:|---|---:|---:|---:|")
    for name, size, batch, what, a, b in rows:
        print(f"| {name} | {size} | {batch} | {what} | {a:,.1f} | {b:,.1f} | {b / a:.2f}x |")
    print(f"\nat the end: {machine_info()}")


if __name__ == "__main__":
    main()
