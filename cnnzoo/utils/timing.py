"""Timing that survives a shared machine: warm-up excluded, candidates measured in
interleaved rounds (drift hits them all alike), medians with their spread.

On CUDA every call is bracketed by `torch.cuda.synchronize()`, so a round measures the
kernels, not the launch queue.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch


@dataclass
class Timing:
    """Seconds per call of one candidate: the median over rounds and each round's value."""

    rounds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.rounds)

    @property
    def spread(self) -> float:
        """(slowest - fastest round) / median: how much to trust the median."""
        return (max(self.rounds) - min(self.rounds)) / self.median if self.median else 0.0


def _sync(device: torch.device | str | None) -> Callable[[], None]:
    if device is not None and torch.device(device).type == "cuda":
        return torch.cuda.synchronize
    return lambda: None


def interleaved(fns: dict[str, Callable[[], object]], *, rounds: int = 5, min_time: float = 0.2,
                warmup: int = 2, device=None) -> dict[str, Timing]:
    """Time each fn in `fns`: `warmup` untimed calls each, then `rounds` rounds in which every
    fn runs in turn for at least `min_time` seconds (and at least once). Returns per fn the
    seconds per call of each round."""
    sync = _sync(device)
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync()
    out = {name: Timing() for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            calls, t0 = 0, time.perf_counter()
            while True:
                fn()
                sync()
                calls += 1
                elapsed = time.perf_counter() - t0
                if elapsed >= min_time:
                    break
            out[name].rounds.append(elapsed / calls)
    return out


def time_once(fn: Callable[[], object], device=None) -> float:
    """Wall seconds of one call (e.g. the first call of a compiled model: its compile time)."""
    sync = _sync(device)
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0
