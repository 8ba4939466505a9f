"""The speed ladder of one model: each rung adds one optimisation to the one before.

    eager NCHW -> BN folded -> channels-last -> compiled -> ONNX Runtime

All rungs run the same weights on the same random batch, timed in the same interleaved
rounds (with the machine's peak probes); each reports images/s, the largest |difference
in logits| from eager and the top-1 agreement with eager. Compile and export time are
reported apart from steady state. The compiled rung is Inductor with freezing (weights as
constants: folded, pre-packed for oneDNN, convolution + activation fused) on the folded
channels-last copy; ONNX Runtime gets its default CPU provider and the same thread count.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from cnnzoo.bench.machine import describe, machine_info
from cnnzoo.bench.measure import (
    Candidate,
    build,
    format_macs,
    format_peaks,
    format_rows,
    macs_per_image,
    measure,
    setup,
)
from cnnzoo.bench.peak import inference_call, peak_kernels
from cnnzoo.errors import CnnzooError
from cnnzoo.utils.timing import time_once


def _first_line(e: Exception) -> str:
    return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:200]}"


def _ort_session(path: Path, device: torch.device):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()  # the same threads as PyTorch
    opts.inter_op_num_threads = 1
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(str(path), opts, providers=providers)


def speed_ladder(name: str, *, batch: int = 16, input_size=None, device=None,
                 rounds: int = 5, min_time: float = 0.5, warmup: int = 2,
                 knobs: dict | None = None, compile: bool = True, onnx: bool = True,
                 peak: bool = True) -> dict:
    """Rungs of `name` at `batch` x `input_size` in float32 (see the module docstring)."""
    from cnnzoo.infer import fold_batchnorm, optimize_for_inference

    device, notes = setup(device)
    model, size = build(name, input_size, knobs, device)
    macs = macs_per_image(model, size)
    flops = 2.0 * macs * batch
    x = torch.randn(batch, *size, device=device)  # every rung takes the same NCHW batch

    folded, report = fold_batchnorm(model, size)
    cl = optimize_for_inference(model, input_size=size, channels_last=True)
    rungs: list[tuple[Candidate, object]] = []  # (timed candidate, fn giving logits)

    def add(rung_name, logits_fn, setup_s=None, note="", memory=True):
        rungs.append((Candidate(rung_name, logits_fn, batch, flops, setup_s, note, memory),
                      logits_fn))

    with torch.no_grad():
        add("eager NCHW", lambda: model(x))
    add("BN folded", inference_call(lambda: folded(x), device), note=report.summary())
    add("channels-last", lambda: cl(x))
    failed = []
    if compile:
        try:
            comp = optimize_for_inference(model, input_size=size, channels_last=True,
                                          compile=True)
            setup_s = time_once(lambda: comp(x), device)
            add("compiled (Inductor, freezing)", lambda: comp(x), setup_s,
                "first call (compile) excluded")
        except Exception as e:  # no C++ compiler, an op Inductor cannot lower, ...
            failed.append({"name": "compiled (Inductor, freezing)", "error": _first_line(e)})
    if onnx:
        try:
            from cnnzoo.export import export_onnx

            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                path = Path(tmp) / f"{name}.onnx"
                export_onnx(model, path, input_size=size, batch=batch)  # static: ORT plans
                sess = _ort_session(path, device)
                setup_s = time.perf_counter() - t0
            x_np = x.cpu().numpy()
            add("ONNX Runtime", lambda: torch.from_numpy(sess.run(None, {"input": x_np})[0]),
                setup_s, f"providers {', '.join(sess.get_providers())}; export + check "
                "excluded", memory=False)  # its arena allocates outside what RSS deltas see
        except Exception as e:  # onnx not installed, or the export check failed
            failed.append({"name": "ONNX Runtime", "error": _first_line(e)})

    with torch.no_grad():
        ref = model(x).float().cpu()
    checks = []
    for _, logits_fn in rungs:
        with torch.no_grad():
            out = torch.as_tensor(logits_fn()).float().cpu()
        checks.append({"max_abs_diff": (out - ref).abs().max().item(),
                       "top1_agreement": (out.argmax(1) == ref.argmax(1)).float().mean().item()})
    result = measure([c for c, _ in rungs], device=device, rounds=rounds, min_time=min_time,
                     warmup=warmup, peaks=peak_kernels(device) if peak else None)
    for row, check in zip(result["candidates"], checks):
        row.update(check)
    result["candidates"] += failed
    return {"machine": machine_info(device), "model": name, "input_size": list(size),
            "batch": batch, "mode": "ladder", "macs_per_image": macs, "notes": notes,
            "logit_scale": ref.abs().max().item(), **result}


def format_ladder(r: dict) -> str:
    size = "x".join(map(str, r["input_size"]))
    rows = [c for c in r["candidates"] if "images_per_s" in c]
    lines = [describe(r["machine"]), *r["notes"],
             f"{r['model']}: speed ladder, batch {r['batch']}, input {size}, float32, "
             f"{format_macs(r['macs_per_image'])} per image (largest |logit| "
             f"{r['logit_scale']:.3g})",
             *format_rows(rows, extra={"max_abs_diff": "max|diff|",
                                       "top1_agreement": "top-1 agree"}),
             *format_peaks(r["peak"])]
    for c in r["candidates"]:
        if "error" in c:
            lines.append(f"  {c['name']}: not measured ({c['error']})")
    base = rows[0]["images_per_s"] if rows else None
    if base:
        lines.append("vs eager: " + ", ".join(
            f"{c['name']} {c['images_per_s'] / base:.2f}x" for c in rows[1:]))
    for c in rows:
        if c["name"] == "BN folded" and c.get("note"):
            lines.append(f"BN folded: {c['note']}")
    lines.append("cnnzoo's inference path: the faster of 'BN folded' and 'channels-last' "
                 "(optimize_for_inference measures both); with compile=True, 'compiled'")
    return "\n".join(lines)


def check_ladder_args(amp: bool) -> None:
    if amp:
        raise CnnzooError("--ladder compares float32 paths (ONNX Runtime runs float32); "
                          "drop --amp")
