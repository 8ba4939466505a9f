"""One model's speed: `bench_model("resnet50", batch=16)`.

Inference (default) times eager NCHW PyTorch and cnnzoo's inference path
(`optimize_for_inference`) on the same weights; training times an SGD step (forward,
backward, update) in the trainer's memory format. Each candidate and the machine's peak
probes (cnnzoo/bench/peak.py) run in the same interleaved rounds after an untimed warm-up;
figures are medians with their spread, and a compile's time is reported apart from the
steady state. Achieved GFLOP/s = 2 x the analysis code's MACs per image x images/s (a
training step counts 3 x the forward: forward, input gradients, weight gradients).

On CUDA the same code runs with synchronised timing, cuDNN benchmark mode and float16
autocast for --amp (bfloat16 on CPU); the output says which.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnzoo.bench.machine import describe, machine_info
from cnnzoo.bench.peak import Kernel, amp_dtype, inference_call, peak_kernels
from cnnzoo.errors import CnnzooError
from cnnzoo.utils.timing import interleaved, time_once


@dataclass
class Candidate:
    name: str
    fn: Callable[[], object]  # one batch
    images: int  # per call
    flops: float  # per call
    setup_s: float | None = None  # compile / export, excluded from the steady state
    note: str = ""
    memory: bool = True  # False: allocates outside what peak_memory can see (ORT's arena)


def _rss_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


@contextlib.contextmanager
def fresh_pages():
    """glibc keeps freed heap memory resident, so a second candidate's activations reuse the
    first's pages and the RSS would not grow at all. While memory is measured, allocations
    from 64 KB up come from mmap and go back to the OS when freed; afterwards the thresholds
    that glibc's own adjustment converges to (32 MB mmap, 64 MB trim) are set, so timings
    taken later in the process see the usual allocator."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc: plain RSS, which may under-report
        yield
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    ok = mallopt(m_mmap_threshold, 64 << 10)
    try:
        yield
    finally:
        if ok:
            mallopt(m_mmap_threshold, 32 << 20)
            mallopt(m_trim_threshold, 64 << 20)


def peak_memory(fn: Callable[[], object], device: torch.device) -> int | None:
    """Bytes one call needs beyond what is already resident (activations, workspaces):
    CUDA max_memory_allocated; on Linux the resident-set high-water mark, reset through
    /proc/self/clear_refs first (use inside `fresh_pages()`). None where neither works.
    One untimed call first pages back in what the kernel may have reclaimed meanwhile
    (weights of a model that sat idle while others ran)."""
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")  # VmHWM := VmRSS
        base = _rss_kb("VmRSS")
        fn()
        return max(0, _rss_kb("VmHWM") - base) * 1024
    except (OSError, StopIteration, ValueError):
        return None


def measure(cands: list[Candidate], *, device: torch.device, rounds: int, min_time: float,
            warmup: int, peaks: list[Kernel] | None = None, memory: bool = True) -> dict:
    """Time `cands` and the peak probes in the same interleaved rounds; rows per candidate."""
    peaks = peaks or []
    fns = {c.name: c.fn for c in cands} | {k.name: k.fn for k in peaks}
    t = interleaved(fns, rounds=rounds, min_time=min_time, warmup=warmup, device=device)
    peak = {k.name.removeprefix("peak "): {
        "spec": k.spec, "gflops": k.flops / t[k.name].median / 1e9,
        "spread": t[k.name].spread} for k in peaks}
    rows = []
    for c in cands:
        med = t[c.name].median
        gflops = c.flops / med / 1e9
        row = {"name": c.name, "images_per_s": c.images / med, "ms_per_batch": 1e3 * med,
               "spread": t[c.name].spread, "rounds_ms": [1e3 * r for r in t[c.name].rounds],
               "gflops": gflops, "setup_s": c.setup_s, "note": c.note}
        for kind, p in peak.items():
            row[f"share_of_{kind}_peak"] = gflops / p["gflops"]
        rows.append(row)
    with fresh_pages():  # after the timing: it changes how the allocator behaves
        for c, row in zip(cands, rows):
            row["peak_memory_bytes"] = (peak_memory(c.fn, device) if memory and c.memory
                                        else None)
    return {"candidates": rows, "peak": peak}


def build(name: str, input_size=None, knobs: dict | None = None,
          device="cpu") -> tuple[nn.Module, tuple[int, int, int]]:
    """A registered model (eval mode, seed 0) on `device` and the input size to bench it at
    (its default unless given; checked on meta tensors first)."""
    from cnnzoo.models.registry import create_model

    torch.manual_seed(0)
    knobs = dict(knobs or {})
    if input_size is not None:
        model = create_model(name, input_size=tuple(input_size), **knobs)
    else:
        model = create_model(name, **knobs)
    size = tuple(input_size or model.default_input_size)
    return model.to(device).eval(), size


def macs_per_image(model: nn.Module, size) -> int:
    from cnnzoo.analysis.profile import profile

    return profile(model.eval(), size, training=False).macs


def setup(device) -> tuple[torch.device, list[str]]:
    """The device and what the output should say about how it is timed."""
    from cnnzoo.utils.device import pick_device

    device = device if isinstance(device, torch.device) else pick_device(device)
    notes = []
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        notes.append("cuda: torch.cuda.synchronize() around every timed call, cuDNN "
                     "benchmark mode on, --amp is float16 autocast")
    else:
        notes.append(f"{device.type}: --amp is bfloat16 autocast")
    return device, notes


def bench_model(name: str, *, batch: int = 16, input_size=None, mode: str = "infer",
                amp: bool = False, compile: bool = False, device=None, rounds: int = 5,
                min_time: float = 0.5, warmup: int = 2, knobs: dict | None = None,
                peak: bool = True) -> dict:
    """images/s, ms per batch, GFLOP/s, share of the measured peak and peak memory of
    `name` at `batch` x `input_size` (see the module docstring). A JSON-ready dict."""
    if mode not in ("infer", "train"):
        raise CnnzooError(f"mode must be 'infer' or 'train', got {mode!r}")
    device, notes = setup(device)
    model, size = build(name, input_size, knobs, device)
    macs = macs_per_image(model, size)
    amp_to = amp_dtype(device) if amp else None
    x = torch.randn(batch, *size, device=device)
    info = None
    if mode == "infer":
        eager = inference_call(lambda: model(x), device, amp_to)
        from cnnzoo.infer import optimize_for_inference

        fast = optimize_for_inference(model, input_size=size, batch_size=batch, compile=compile)
        info = fast.info
        path = inference_call(lambda: fast(x), device, amp_to)
        setup_s = None
        if compile:
            try:
                setup_s = time_once(path, device)
            except Exception as e:
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                raise CnnzooError(f"torch.compile failed for {name}: {first[:300]}") from e
        flops = 2.0 * macs * batch
        cands = [Candidate("eager NCHW", eager, batch, flops),
                 Candidate("cnnzoo inference path", path, batch, flops, setup_s,
                           "compiled: first call (compile) excluded" if compile else "")]
    else:
        cands = [_train_candidate(model, x, device, amp_to, 6.0 * macs * batch)]
    result = measure(cands, device=device, rounds=rounds, min_time=min_time, warmup=warmup,
                     peaks=peak_kernels(device, autocast=amp) if peak else None)
    return {"machine": machine_info(device), "model": name, "input_size": list(size),
            "batch": batch, "mode": mode, "amp": str(amp_to).replace("torch.", "") if amp
            else None, "compile": compile, "macs_per_image": macs,
            "inference_path": info.summary().splitlines() if info else None,
            "notes": notes, **result}


def _train_candidate(model, x, device, amp_to, flops) -> Candidate:
    """One SGD step in the trainer's default format (channels-last except on MPS)."""
    fmt = torch.contiguous_format if device.type == "mps" else torch.channels_last
    model = model.train().to(memory_format=fmt)
    x = x.contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (len(x),), device=device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    scaler = torch.amp.GradScaler(device.type) if amp_to == torch.float16 else None

    def step():
        ctx = (torch.autocast(device.type, dtype=amp_to) if amp_to is not None
               else contextlib.nullcontext())
        with ctx:
            out = model(x)
            logits = out.logits if hasattr(out, "logits") else out
            loss = F.cross_entropy(logits.float(), y % logits.shape[1])
        opt.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            opt.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()

    fmt_name = "NCHW" if fmt is torch.contiguous_format else "channels-last"
    return Candidate(f"train step ({fmt_name}, SGD)", step, len(x), flops,
                     note="GFLOP/s counts a step as 3 x the forward")


def format_macs(n: float) -> str:
    return f"{n / 1e9:,.2f} GMACs" if n >= 1e8 else f"{n / 1e6:,.2f} MMACs"


def _mb(n) -> str:
    return "n/a" if n is None else f"{n / 2**20:,.0f} MB"


def format_rows(rows: list[dict], extra: dict[str, str] | None = None) -> list[str]:
    """A fixed-width table of candidate rows (shared by bench and the ladder); `extra`:
    {row key: column header} for more columns."""
    extra = extra or {}
    head = f"  {'':<28}{'img/s':>10}{'ms/batch':>11}{'spread':>8}{'GFLOP/s':>9}{'conv pk':>9}"
    head += "".join(f"{h:>12}" for h in extra.values()) + f"{'peak mem':>11}"
    lines = [head]
    for r in rows:
        share = r.get("share_of_conv_peak")
        line = (f"  {r['name']:<28}{r['images_per_s']:>10,.1f}{r['ms_per_batch']:>11,.1f}"
                f"{100 * r['spread']:>7.0f}%{r['gflops']:>9,.1f}"
                + (f"{100 * share:>8.0f}%" if share is not None else f"{'':>9}"))
        for key in extra:
            v = r.get(key)
            line += f"{'' if v is None else (f'{v:.2g}' if isinstance(v, float) else v):>12}"
        lines.append(line + f"{_mb(r.get('peak_memory_bytes')):>11}")
        if r.get("setup_s") is not None:
            lines.append(f"  {'':<28}setup (compile / export, not in the figures above): "
                         f"{r['setup_s']:.1f} s")
        if r.get("error"):
            lines.append(f"  {'':<28}failed: {r['error']}")
    return lines


def format_peaks(peak: dict) -> list[str]:
    return [f"  peak {kind}: {p['gflops']:,.1f} GFLOP/s (spread {100 * p['spread']:.0f}%), "
            f"{p['spec']}" for kind, p in peak.items()]


def format_bench(r: dict) -> str:
    """The text `cnnzoo bench MODEL` prints."""
    size = "x".join(map(str, r["input_size"]))
    lines = [describe(r["machine"]), *r["notes"],
             f"{r['model']}: {r['mode']}, batch {r['batch']}, input {size}, "
             f"{r['amp'] or 'float32'}, {format_macs(r['macs_per_image'])} per image",
             *format_rows(r["candidates"]), *format_peaks(r["peak"])]
    if r.get("inference_path"):
        lines += ["cnnzoo inference path:"] + [f"  {s}" for s in r["inference_path"]]
    if len(r["candidates"]) == 2 and r["mode"] == "infer":
        a, b = r["candidates"]
        lines.append(f"inference path / eager: {b['images_per_s'] / a['images_per_s']:.2f}x")
    return "\n".join(lines)
