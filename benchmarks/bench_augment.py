"""Augmented images per second on this CPU: the loader's batch path and the augmentation alone.

Run: .venv/bin/python benchmarks/bench_augment.py [--batch 256] [--seconds 3] [--windows 5]

Targets (issue): >= 50,000 img/s for 28x28x1 flip+crop, >= 20,000 img/s for 32x32x3
flip+crop+color+PCA, on the "full batch path" column; the exit status is 1 if any row with
a target misses it. Prints a markdown table for BENCHMARKS.md.

Both columns process the same images per call: one loader chunk (`chunk` batches of
`--batch`, which the prefetch thread cuts, augments and normalises in one pass).
  augment only     `aug(x, generator)` on those images, already float
  full batch path  the loader's `_make`: index the uint8 tensor, to float, augment,
                   normalise (a strict superset of the work above)
Each figure is the median over `--windows` timing windows; the two columns' windows are
interleaved so both see the same machine conditions, after a timed warm-up (first calls
were seen up to 50x slower than the steady state here). The spread column is
(max - min) / median over the windows: large values mean a busy machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import torch

from cnnzoo.data import ArrayDataset, build_augment, build_loader


def machine_info() -> str:
    """CPU model, cores, torch version and intra-op threads, load average: for headers."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next((line.split(":", 1)[1].strip() for line in f
                          if line.startswith("model name")), model)
    except OSError:
        pass
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (f"cpu: {model}, {os.cpu_count()} cores; torch {torch.__version__}, "
            f"{torch.get_num_threads()} intra-op threads; load average {load}")


def _warm(fn, seconds: float) -> None:
    t0, calls = time.perf_counter(), 0
    while calls < 5 or time.perf_counter() - t0 < seconds:
        fn()
        calls += 1


def _rates(fns: dict, images: int, seconds: float, windows: int) -> dict[str, list[float]]:
    """img/s of each fn in each of `windows` windows of seconds/windows, interleaved."""
    for fn in fns.values():
        _warm(fn, max(0.2, 0.1 * seconds))
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(windows):
        for k, fn in fns.items():
            n, t0 = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - t0) < seconds / windows:
                fn()
                n += images
            out[k].append(n / elapsed)
    return out


def _fake(n, c, hw):
    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (n, c, hw, hw), generator=g, dtype=torch.uint8)
    return ArrayDataset(imgs, torch.zeros(n, dtype=torch.long), ["x"], f"{c}x{hw}x{hw}")


CASES = [  # (label, C, H=W, spec, target img/s)
    ("28x28x1", 1, 28, "flip,crop:4", 50_000),
    ("32x32x3", 3, 32, "flip,crop:4,color:0.1,pca:0.1", 20_000),
    ("32x32x3", 3, 32, "flip,crop:4,rotate:10,cutout:8", None),
    ("64x64x3", 3, 64, "rrc:0.25,flip,pca:0.1,erase", None),
]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=3.0,
                    help="timed seconds per column and row (plus warm-up)")
    ap.add_argument("--windows", type=int, default=5, help="timing windows per figure")
    ap.add_argument("--threads", default="1,2",
                    help="torch intra-op thread counts to measure, comma-separated")
    args = ap.parse_args(argv)
    print(f"command: {' '.join([sys.executable.split('/')[-1], *sys.argv])}")
    print(f"{machine_info()}")
    print(f"batch {args.batch}; median of {args.windows} windows, {args.seconds:g} s per "
          "figure\n")
    print("| images | augment | threads | images/call | augment only (img/s) "
          "| full batch path (img/s) | spread | target |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    misses, odd = [], []
    for (label, c, hw, spec, target), threads in [
        (case, int(t)) for case in CASES for t in args.threads.split(",")
    ]:
        torch.set_num_threads(threads)
        got = torch.get_num_threads()  # what is really in effect
        ds = _fake(20 * args.batch, c, hw)
        aug = build_augment(spec, (hw, hw), c, pca_from=ds if "pca" in spec else None)
        mean, std = ds.channel_stats()
        dl = build_loader(ds, args.batch, shuffle=True, augment=aug, mean=mean, std=std,
                          device="cpu", prefetch=False, drop_last=True)
        group = dl._groups(0)[0]  # the first chunk, as the prefetch thread makes it
        idx = torch.cat(group)
        x = ds.images[idx].float().div_(255)
        g = torch.Generator().manual_seed(0)
        r = _rates({"aug": lambda aug=aug, x=x, g=g: aug(x, g),
                    "full": lambda dl=dl, group=group: dl._make(group, 0, 0)},
                   len(idx), args.seconds, args.windows)
        med = {k: statistics.median(v) for k, v in r.items()}
        spread = "/".join(f"{(max(v) - min(v)) / med[k]:.0%}" for k, v in r.items())
        verdict = ""
        if target:
            met = med["full"] >= target
            verdict = f">= {target:,}: {'met' if met else 'MISSED'}"
            if not met:
                misses.append(f"{label} `{spec}` threads {got}")
        if med["full"] > 1.1 * med["aug"]:  # cannot be: full does strictly more work
            odd.append(f"{label} `{spec}` threads {got}")
            verdict += " (full > augment only: machine busy, rerun)"
        shown = f"{got}" if got == threads else f"{got} (asked {threads})"
        print(f"| {label} | `{spec}` | {shown} | {len(idx)} | {med['aug']:,.0f} "
              f"| {med['full']:,.0f} | {spread} | {verdict} |", flush=True)
    print(f"\nat the end: load average {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if odd:
        print(f"warning: inconsistent rows (noise): {'; '.join(odd)}", file=sys.stderr)
    if misses:
        print(f"target missed: {'; '.join(misses)}", file=sys.stderr)
    return 1 if misses else 0


if __name__ == "__main__":
    raise SystemExit(main())
