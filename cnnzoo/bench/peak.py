"""The machine's attainable peak, measured rather than taken from a data sheet: one large
channels-last 3x3 convolution and one large matmul, timed in the same interleaved rounds as
the model (so both see the same load). A model's GFLOP/s divided by the convolution figure
says how much of what this machine can do for convolutions the model gets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Kernel:
    name: str
    spec: str  # what it computes, printed beside its figure
    flops: float  # per call (2 x MACs)
    fn: Callable[[], object]


def peak_kernels(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                 autocast: bool = False) -> list[Kernel]:
    """The conv and matmul probes, sized so one call takes tens of milliseconds on a small
    CPU and a few on a GPU (big enough that the kernels, not overheads, dominate)."""
    device = torch.device(device)
    gpu = device.type != "cpu"
    n, c, hw = (64, 256, 56) if gpu else (8, 256, 28)
    size = 8192 if gpu else 2048
    gen = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(n, c, hw, hw, generator=gen).to(device, dtype).contiguous(
        memory_format=torch.channels_last)
    w = torch.randn(c, c, 3, 3, generator=gen).div_(48).to(device, dtype).contiguous(
        memory_format=torch.channels_last)
    a = torch.randn(size, size, generator=gen).to(device, dtype)
    b = torch.randn(size, size, generator=gen).div_(size ** 0.5).to(device, dtype)
    amp = amp_dtype(device) if autocast else None
    conv = inference_call(lambda: F.conv2d(x, w, padding=1), device, amp)
    mm = inference_call(lambda: a @ b, device, amp)
    kind = str(amp or dtype).replace("torch.", "")
    return [
        Kernel("peak conv", f"3x3 conv {c}->{c} ch on {n}x{hw}x{hw} channels-last, {kind}",
               2.0 * n * hw * hw * c * c * 9, conv),
        Kernel("peak matmul", f"{size}x{size} @ {size}x{size} matmul, {kind}",
               2.0 * size ** 3, mm),
    ]


def amp_dtype(device: torch.device | str) -> torch.dtype:
    """What --amp computes in: float16 on CUDA, bfloat16 elsewhere (CPU AMP is bf16)."""
    return torch.float16 if torch.device(device).type == "cuda" else torch.bfloat16


def inference_call(f: Callable[[], object], device: torch.device | str,
                   amp: torch.dtype | None = None) -> Callable[[], object]:
    """f run in inference mode, under autocast to `amp` if given."""
    device_type = torch.device(device).type

    def call():
        with torch.inference_mode():
            if amp is None:
                return f()
            with torch.autocast(device_type, dtype=amp):
                return f()
    return call
