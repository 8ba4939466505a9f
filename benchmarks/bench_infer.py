"""Inference targets: ResNet-50's speed ladder and the inference path on every zoo model.

    .venv/bin/python benchmarks/bench_infer.py [--rounds 5] [--min-time 1.0] [--no-zoo]

1. ResNet-50, batch 16, 3x224x224, float32: eager NCHW -> BN folded -> channels-last ->
   compiled (Inductor, freezing) -> ONNX Runtime (default CPU provider, the same threads),
   all in the same interleaved rounds with the machine's peak probes. Targets, as ratios
   measured side by side: cnnzoo's inference path (`optimize_for_inference(model,
   compile=True)`, the compiled rung) >= 1.3x eager NCHW, >= ONNX Runtime, and >= 75% of the
   measured peak convolution throughput.
2. Every zoo model at its small input (`cnnzoo bench --zoo`): the inference path never
   slower than eager. Writes bench-zoo/zoo.{json,md,png}.

Every table row carries the CPU model and its vector flags. Run it on a quiet machine:
the ratios mean nothing while other jobs share the cores.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnzoo.bench.ladder import format_ladder, speed_ladder
from cnnzoo.bench.machine import describe
from cnnzoo.bench.zoo import bench_zoo

PATH_RUNG = "compiled (Inductor, freezing)"


def _cpu(machine: dict) -> str:
    return f"{machine['cpu']} ({' '.join(machine['cpu_flags'])}), {machine['threads']} threads"


def targets(r: dict) -> list[tuple[str, float | None, str, bool | None]]:
    """(target, measured value, wanted, met?) for the ResNet-50 ladder `r`."""
    rows = {c["name"]: c for c in r["candidates"] if "images_per_s" in c}
    path, eager, ort = rows.get(PATH_RUNG), rows.get("eager NCHW"), rows.get("ONNX Runtime")

    def check(name, value, want, ok):
        return (name, value, want, None if value is None else ok(value))

    vs_eager = path["images_per_s"] / eager["images_per_s"] if path and eager else None
    vs_ort = path["images_per_s"] / ort["images_per_s"] if path and ort else None
    share = path.get("share_of_conv_peak") if path else None
    return [check("inference path / eager NCHW", vs_eager, ">= 1.30x", lambda v: v >= 1.3),
            check("inference path / ONNX Runtime", vs_ort, ">= 1.00x", lambda v: v >= 1.0),
            check("inference path / peak conv", share, ">= 75%", lambda v: v >= 0.75)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=1.0, help="seconds per rung per round")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--no-zoo", action="store_true", help="only the ResNet-50 ladder")
    ap.add_argument("--zoo-out", type=Path, default=Path("bench-zoo"))
    args = ap.parse_args()

    r = speed_ladder("resnet50", batch=args.batch, input_size=(3, 224, 224), device="cpu",
                     rounds=args.rounds, min_time=args.min_time)
    print(format_ladder(r), flush=True)
    cpu = _cpu(r["machine"])
    print("\n| model | batch | input | rung | img/s | ms/batch | spread | GFLOP/s | of peak conv "
          "| max abs diff | top-1 agreement | CPU |")
    print("|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for c in r["candidates"]:
        if "images_per_s" not in c:
            print(f"| resnet50 | {args.batch} | 3x224x224 | {c['name']} | not measured: "
                  f"{c['error']} | | | | | | | {cpu} |")
            continue
        print(f"| resnet50 | {args.batch} | 3x224x224 | {c['name']} | {c['images_per_s']:.1f} "
              f"| {c['ms_per_batch']:.0f} | {100 * c['spread']:.0f}% | {c['gflops']:.1f} | "
              f"{100 * c['share_of_conv_peak']:.0f}% | {c['max_abs_diff']:.1e} | "
              f"{100 * c['top1_agreement']:.0f}% | {cpu} |")
    for kind, p in r["peak"].items():
        print(f"| peak {kind} | | | {p['spec']} | | | {100 * p['spread']:.0f}% | "
              f"{p['gflops']:.1f} | | | | {cpu} |")
    print("\n| target | measured | wanted | met | CPU |\n|---|---:|---|---|---|")
    for name, value, want, ok in targets(r):
        shown = "n/a" if value is None else (f"{100 * value:.0f}%" if "peak" in name
                                            else f"{value:.2f}x")
        print(f"| {name} | {shown} | {want} | "
              f"{'n/a' if ok is None else ('yes' if ok else 'no')} | {cpu} |")

    if args.no_zoo:
        return
    print(f"\nzoo at small inputs ({describe(r['machine']).splitlines()[0]}):", flush=True)
    summary = bench_zoo(args.zoo_out, device="cpu",
                        progress=lambda line: print(f"  {line}", flush=True))
    slower = [row["model"] for row in summary["rows"] if row.get("speedup", 1.0) < 1.0]
    print(f"inference path slower than eager: {', '.join(slower) or 'none'}")
    for f in summary["files"].values():
        print(f"wrote {f}")


if __name__ == "__main__":
    main()
