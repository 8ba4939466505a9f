"""What a benchmark ran on: CPU model and its vector flags, cores, torch and oneDNN versions,
threads, device, load. Every recorded figure carries this, because a ratio measured on one
CPU says little about another (AVX2 vs AVX-512 vs AMX changes which path wins)."""

from __future__ import annotations

import os
import platform
import re

import torch

# The /proc/cpuinfo flags that decide which convolution / matmul kernels oneDNN and MKL pick.
_ISA = re.compile(r"^(sse4_2|avx|avx2|fma|f16c|avx512\w*|avx_vnni\w*|amx\w*)$")


def _cpuinfo() -> tuple[str, list[str]]:
    model, flags = platform.processor() or platform.machine(), []
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model in ("", platform.machine()):
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = value.split()
    except OSError:  # not Linux: the platform string is all we know
        pass
    return model, flags


def _onednn_version() -> str:
    m = re.search(r"MKL-DNN v([\d.]+)", torch.__config__.show())
    return m.group(1) if m else ""


def machine_info(device: torch.device | str = "cpu") -> dict:
    """CPU model, ISA flags, cores (usable / present), torch + oneDNN + onnxruntime versions,
    intra-op threads, device name, load average: a dict, JSON-ready."""
    device = torch.device(device)
    model, flags = _cpuinfo()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    try:
        import onnxruntime

        ort = onnxruntime.__version__
    except ImportError:
        ort = None
    info = {
        "cpu": model,
        "cpu_flags": [f for f in flags if _ISA.match(f)],
        "cores": usable,
        "cpus_present": os.cpu_count(),
        "torch": torch.__version__,
        "onednn": _onednn_version(),
        "onnxruntime": ort,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                        else model),
        "load_average": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg")
        else None,
    }
    if device.type == "cuda":
        info["cudnn"] = torch.backends.cudnn.version()
        info["cudnn_benchmark"] = bool(torch.backends.cudnn.benchmark)
    return info


def describe(info: dict) -> str:
    """One line for headers: "cpu: AMD EPYC (avx2 avx512f ...), 2 cores; torch 2.13 ..."."""
    load = ", ".join(f"{v:.2f}" for v in info["load_average"] or [])
    line = (f"cpu: {info['cpu']} ({' '.join(info['cpu_flags']) or 'no flags read'}), "
            f"{info['cores']} cores; torch {info['torch']}"
            + (f", oneDNN {info['onednn']}" if info["onednn"] else "")
            + (f", onnxruntime {info['onnxruntime']}" if info["onnxruntime"] else "")
            + f"; {info['threads']} threads; load average {load}")
    if info["device"].startswith("cuda"):
        line += (f"\ndevice: {info['device']} ({info['device_name']}), cuDNN "
                 f"{info.get('cudnn')}, benchmark mode "
                 f"{'on' if info.get('cudnn_benchmark') else 'off'}, synchronised timing")
    else:
        line += f"\ndevice: {info['device']}"
    return line
