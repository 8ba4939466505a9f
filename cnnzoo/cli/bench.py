"""`cnnzoo bench MODEL [...]` and `cnnzoo bench --zoo`: measured speed (cnnzoo/bench/)."""

from __future__ import annotations

import json
from pathlib import Path

from cnnzoo.cli.analysis import _add_builder_options
from cnnzoo.cli.args import positive_int
from cnnzoo.errors import CnnzooError


def _non_negative(s: str) -> float:
    import argparse

    try:
        v = float(s)
    except ValueError:
        v = -1.0
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {s!r}")
    return v


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "bench", help="measure a model's speed (images/s, GFLOP/s, share of peak, memory)",
        description="Images/s, ms per batch, achieved GFLOP/s (from the analysis MACs), peak "
        "memory and the share of the machine's peak (a large channels-last convolution and a "
        "large matmul, measured in the same run). Warm-up excluded; medians of interleaved "
        "rounds with their spread; compile time reported apart. On CUDA: synchronised "
        "timing, cuDNN benchmark mode, float16 AMP.")
    p.add_argument("model", nargs="?", metavar="MODEL", help="registered model name")
    p.add_argument("--batch", type=positive_int, default=None,
                   help="batch size (default 16; 8 with --zoo)")
    p.add_argument("--input", metavar="CxHxW", help="input size (default: the model's own)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--infer", dest="mode", action="store_const", const="infer",
                      help="inference: eager NCHW against cnnzoo's inference path (default)")
    mode.add_argument("--train", dest="mode", action="store_const", const="train",
                      help="a training step (forward, backward, SGD update)")
    p.set_defaults(mode="infer")
    p.add_argument("--amp", action="store_true",
                   help="autocast (bfloat16 on CPU, float16 on CUDA)")
    p.add_argument("--compile", action="store_true",
                   help="the inference path with torch.compile (Inductor, freezing)")
    p.add_argument("--ladder", action="store_true", help="eager NCHW -> BN folded -> "
                   "channels-last -> compiled -> ONNX Runtime, each against eager")
    p.add_argument("--no-compile", action="store_true", help="--ladder without its compiled "
                   "rung (compiling takes a minute for big models)")
    p.add_argument("--zoo", action="store_true", help="every model at its small input: "
                   "table and MACs-vs-latency plot in --out")
    p.add_argument("--models", default="*", metavar="PATTERN",
                   help="with --zoo: only models matching this shell pattern")
    p.add_argument("--out", type=Path, default=Path("bench-zoo"), metavar="DIR",
                   help="with --zoo: where zoo.json, zoo.md, zoo.png go (default bench-zoo)")
    p.add_argument("--device", default="auto", help="cpu, cuda, mps or auto (default)")
    p.add_argument("--threads", type=positive_int, help="intra-op threads (PyTorch and ONNX "
                   "Runtime alike; default: PyTorch's)")
    p.add_argument("--rounds", type=positive_int, default=None, help="interleaved rounds "
                   "(default 5; 3 with --zoo)")
    p.add_argument("--min-time", type=_non_negative, default=None, metavar="SECONDS",
                   help="timed seconds per candidate per round (default 0.5; 0.1 with --zoo)")
    p.add_argument("--warmup", type=positive_int, default=2, help="untimed calls (default 2)")
    p.add_argument("--no-peak", action="store_true", help="skip the peak conv / matmul probes")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    _add_builder_options(p)
    p.set_defaults(func=_bench)


def _bench(args) -> int:
    import torch

    from cnnzoo.analysis import parse_input_size

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.zoo:
        return _zoo(args)
    if not args.model:
        raise CnnzooError("name a MODEL (see `cnnzoo models`), or --zoo for every model")
    knobs = dict(args.knob)
    if args.small_input:
        knobs["small_input"] = True
    size = parse_input_size(args.input) if args.input else None
    common = dict(batch=args.batch or 16, input_size=size, device=args.device,
                  rounds=args.rounds or 5, min_time=0.5 if args.min_time is None else args.min_time,
                  warmup=args.warmup, knobs=knobs, peak=not args.no_peak)
    if args.ladder:
        from cnnzoo.bench.ladder import check_ladder_args, format_ladder, speed_ladder

        check_ladder_args(args.amp)
        if args.mode == "train":
            raise CnnzooError("--ladder measures inference; drop --train")
        r = speed_ladder(args.model, compile=not args.no_compile, **common)
        print(json.dumps(r, indent=2) if args.json else format_ladder(r))
        return 0
    from cnnzoo.bench.measure import bench_model, format_bench

    r = bench_model(args.model, mode=args.mode, amp=args.amp, compile=args.compile, **common)
    print(json.dumps(r, indent=2) if args.json else format_bench(r))
    return 0


def _zoo(args) -> int:
    from cnnzoo.bench.zoo import bench_zoo

    if args.model:
        raise CnnzooError("--zoo benches every model; use --models PATTERN to choose, not "
                          "MODEL")
    summary = bench_zoo(args.out, batch=args.batch or 8, pattern=args.models,
                        device=args.device, rounds=args.rounds or 3,
                        min_time=0.1 if args.min_time is None else args.min_time,
                        progress=None if args.json else print)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for f in summary["files"].values():
            print(f"wrote {f}")
    return 0
