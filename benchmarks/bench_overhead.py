"""The trainer's own overhead over a bare step loop (results in BENCHMARKS.md, "Trainer overhead").

    .venv/bin/python benchmarks/bench_overhead.py [--models lenet5,resnet20] [--rounds 5]
        [--steps N] [--json overhead.json]

For each model, in one process and one run: the trainer trains rounds + 1 epochs of S steps
(the first epoch warms both loops up and is dropped), and after each epoch, from its
`on_epoch` hook (outside the trainer's timed part), a bare loop runs one pass over the same
epoch's batches, made beforehand and already on the device, with an identical model: the
same initial weights, builder knobs, memory format, batch, optimizer, lr (the trainer's at
that epoch's end) and loss; forward, backward, optimizer step, nothing else. The two alternate
epoch by epoch, so drift on the machine hits both alike, and both models have trained as
many passes over the same images.

What is compared, and why it is fair:
- trainer: its epoch record's `images_per_s`, which counts the epoch's steps only (from the
  first batch to the last step's loss read). Inside: making each batch (indexing the uint8
  images, float, normalise, channels-last), the lr schedule, the loss and accuracy kept on
  the device, the log-step syncs and metrics lines, the monitor's one measured step.
  Outside: validation, monitoring's activation statistics and filter image, checkpoints.
- bare loop: wall time of the same S steps (CUDA: synchronised at the end, as the trainer's
  epoch ends with a read of its losses).
- both: the model's default recipe except augmentation, which is off: it is work the bare
  loop would need as well (its speed is bench_augment.py's). Synthetic data of the dataset
  shape the model trains on here (LeNet-5 1x28x28, ResNet-20 3x32x32).
Overhead = median trainer seconds/step / median bare seconds/step - 1. Target: <= 5%.

Run it on a quiet machine (load average well below the core count). Every row carries the
CPU model and its vector flags; the load average is printed at the start and at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time

import torch

from cnnzoo.casestudy.core import machine, machine_line
from cnnzoo.models.registry import create_model, model_info
from cnnzoo.train import TrainConfig, Trainer, build_parts, recipe_for
from cnnzoo.train.trainer import build_optimizer

SHAPES = {"lenet5": (1, 28), "resnet20": (3, 32)}  # (channels, size) of the synthetic images
STEPS = {"lenet5": 200, "resnet20": 20}  # per epoch: about 3 s each on the 2-core EPYC
VAL_FRACTION = 0.02  # validation is outside both timings; kept small to save wall time


def bare_loop(parts, batches: list):
    """fn(lr): one bare pass over `batches` with a fresh copy of parts' model, at `lr`;
    returns the seconds it took."""
    rc, cfg, device = parts.run_config, parts.cfg, parts.device
    torch.manual_seed(cfg.seed)
    model = create_model(rc["model"], num_classes=rc["num_classes"], in_chans=rc["in_chans"],
                         **rc["model_kwargs"])
    fmt = torch.channels_last if parts.channels_last else torch.preserve_format
    model = model.to(device, memory_format=fmt).train()
    opt = build_optimizer(cfg, [{"params": list(model.parameters())}])
    loss_fn = parts.loss_fn
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def run(lr: float) -> float:
        for g in opt.param_groups:
            g["lr"] = lr
        sync()
        t0 = time.perf_counter()
        for x, y in batches:
            loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sync()
        return time.perf_counter() - t0
    return run


def measure(model_name: str, rounds: int, steps: int, batch: int | None = None) -> dict:
    """Interleaved rounds of trainer epochs and bare passes; seconds per step of each."""
    c, size = SHAPES.get(model_name, (3, 32))
    bs = batch or recipe_for(model_info(model_name).recipe, small=True)["batch_size"]
    n = math.ceil((steps + 0.5) * bs / (1 - VAL_FRACTION))
    with tempfile.TemporaryDirectory() as out:
        parts = build_parts(TrainConfig(
            model=model_name, dataset="synthetic", out=out, augment="", epochs=rounds + 1,
            batch_size=bs, val_fraction=VAL_FRACTION, progress=False,
            dataset_kwargs={"num_samples": n, "channels": c, "size": size}))
        steps = len(parts.train_loader)
        bare = bare_loop(parts, list(parts.train_loader))  # one epoch's batches, made now
        trainer_s, bare_s = [], []

        def on_epoch(rec, _model):
            t = bare(rec["lr"])
            if rec["epoch"] > 1:  # epoch 1 warms both up
                trainer_s.append(bs / rec["images_per_s"])
                bare_s.append(t / steps)
                print(f"  {model_name} round {rec['epoch'] - 1}: trainer "
                      f"{1e3 * trainer_s[-1]:.2f} ms/step, bare {1e3 * bare_s[-1]:.2f} ms/step",
                      flush=True)

        Trainer(parts, on_epoch).run()
    tm, bm = statistics.median(trainer_s), statistics.median(bare_s)
    return {"model": model_name, "batch": bs, "input": f"{c}x{size}x{size}", "steps": steps,
            "rounds": rounds, "optimizer": parts.cfg.optimizer, "trainer_ms": 1e3 * tm,
            "bare_ms": 1e3 * bm, "overhead": tm / bm - 1,
            "spread": {k: (max(v) - min(v)) / statistics.median(v)
                       for k, v in (("trainer", trainer_s), ("bare", bare_s))},
            "round_overheads": [t / b - 1 for t, b in zip(trainer_s, bare_s)]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="lenet5,resnet20", metavar="M1,M2")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=None, help="per epoch (default: about 3 s "
                    "of steps per model on the 2-core EPYC)")
    ap.add_argument("--batch", type=int, default=None, help="default: each recipe's")
    ap.add_argument("--json", metavar="PATH", help="also write the results here")
    args = ap.parse_args()
    start, load0 = machine(), os.getloadavg()
    cpu = machine_line(start)
    print(f"{cpu}; load average {load0[0]:.2f}", flush=True)
    results = [measure(m, args.rounds, args.steps or STEPS.get(m, 20), args.batch)
               for m in args.models.split(",")]
    load1 = os.getloadavg()
    print("\n| model | input | batch | optimizer | steps x rounds | trainer (ms/step) "
          "| bare loop (ms/step) | overhead | per-round overheads | spread trainer/bare "
          "| target <= 5% | CPU |")
    print("|---|---|---:|---|---:|---:|---:|---:|---|---:|---|---|")
    for r in results:
        rounds = ", ".join(f"{100 * v:+.1f}%" for v in r["round_overheads"])
        print(f"| {r['model']} | {r['input']} | {r['batch']} | {r['optimizer']} | "
              f"{r['steps']} x {r['rounds']} | {r['trainer_ms']:.2f} | {r['bare_ms']:.2f} | "
              f"{100 * r['overhead']:+.1f}% | {rounds} | {100 * r['spread']['trainer']:.0f}%/"
              f"{100 * r['spread']['bare']:.0f}% | {'met' if r['overhead'] <= 0.05 else 'not met'}"
              f" | {cpu} |")
    print(f"\nload average (1 min) at the start {load0[0]:.2f}, at the end {load1[0]:.2f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"machine": start, "load_average": [load0, load1], "results": results},
                      f, indent=1)


if __name__ == "__main__":
    main()
