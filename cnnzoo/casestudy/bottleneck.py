"""`bottleneck`: 1x1 convolutions cut the cost of a 3x3 layer (seed 002) and of the Inception
module (seed 001). Counts come from the analysis code; CPU time is measured beside them."""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn as nn

from cnnzoo.analysis import profile
from cnnzoo.casestudy.core import CONFIRMED, Context, Finding, Rule, Study, combine, png_bytes

HW = 28  # the feature-map size of the seed's Inception example (28 x 28 x 256)
C, MID = 256, 64

# Fixed before the run: the bottleneck must need at least 5x fewer MACs per position (the seed
# says ~600K vs ~70K, 8.5x) and be measurably faster on this CPU.
COUNT_RULE = Rule("3x3-256 needs more than 5x the bottleneck's MACs per position", margin=0)
TIME_RULE = Rule("the 3x3-256 layer takes longer than the bottleneck by more than the spread "
                 "of the timings (half their range over rounds)")


def direct() -> nn.Module:
    return nn.Conv2d(C, C, 3, padding=1, bias=False)


def bottleneck() -> nn.Module:
    return nn.Sequential(nn.Conv2d(C, MID, 1, bias=False), nn.ReLU(),
                         nn.Conv2d(MID, MID, 3, padding=1, bias=False), nn.ReLU(),
                         nn.Conv2d(MID, C, 1, bias=False))


def inception(naive: bool) -> nn.Module:
    from cnnzoo.models.googlenet import Inception

    # The seed's example: 28x28x256 in; 1x1 128, 3x3 192, 5x5 96 (+ pool); reduced form with
    # 64-channel 1x1 reductions and a 64-channel pool projection.
    return Inception(C, 128, 64, 192, 64, 96, 64, naive=naive)


def _ms(module: nn.Module, x: torch.Tensor, rounds: int) -> list[float]:
    module.eval()
    times = []
    with torch.inference_mode():
        module(x)  # warm-up
        for _ in range(rounds):
            t = time.perf_counter()
            module(x)
            times.append(1000 * (time.perf_counter() - t))
    return times


def interleaved_ms(modules: dict[str, nn.Module], x: torch.Tensor, rounds: int
                   ) -> dict[str, list[float]]:
    """Per-round medians, the modules taking turns so that machine noise hits them alike."""
    out = {k: [] for k in modules}
    for _ in range(rounds):
        for k, m in modules.items():
            out[k].append(statistics.median(_ms(m, x, 3)))
    return out


def run(ctx: Context) -> Finding:
    rounds, batch = {"tiny": (2, 1), "small": (7, 8), "full": (20, 32)}[ctx.budget]
    x = torch.randn(batch, C, HW, HW)
    nets = {"3x3 conv, 256 -> 256": direct(), "1x1 64 / 3x3 64 / 1x1 256": bottleneck(),
            "Inception, naive": inception(True), "Inception, 1x1 reductions": inception(False)}
    macs = {k: profile(m, (C, HW, HW), training=False).macs for k, m in nets.items()}
    times = interleaved_ms(nets, x, rounds)
    rows = []
    for k in nets:
        t = times[k]
        rows.append({"layer": k, "MACs / position": macs[k] // (HW * HW),
                     "MACs (28x28)": macs[k], "ms / batch": statistics.fmean(t),
                     "spread ms": (max(t) - min(t)) / 2})
    d, b = list(nets)[:2]
    ni, ri = list(nets)[2:]
    ratio = macs[d] / macs[b]
    count_v = CONFIRMED if ratio > 5 else "not confirmed"
    time_v, dt, noise = TIME_RULE.judge(times[d], times[b])
    itime_v, _, _ = TIME_RULE.judge(times[ni], times[ri])
    verdict = combine([count_v, time_v, itime_v])
    t_ratio = statistics.fmean(times[d]) / statistics.fmean(times[b])
    i_ratio = macs[ni] / macs[ri]
    why = (f"MACs per position: {macs[d] // HW ** 2:,} vs {macs[b] // HW ** 2:,} "
           f"({ratio:.2f}x fewer; the seed's ~600K vs ~70K); part verdict {count_v}. "
           f"Measured time {t_ratio:.2f}x faster ({dt:.2f} ms gained against a spread of "
           f"{noise:.2f} ms): {time_v}. Inception module: {macs[ni] / 1e6:.0f}M vs "
           f"{macs[ri] / 1e6:.0f}M MACs ({i_ratio:.2f}x; the seed's 854M vs 358M, whose 358M "
           f"counts the 3x3 conv twice, see docs/analysis.md): time {itime_v}. The time gain "
           f"is smaller than the MAC gain: 1x1 convolutions do little work per byte moved.")
    fig = _figure(rows)
    return Finding(
        setting=(f"Single layers on a {batch} x {C} x {HW} x {HW} float32 input, eval mode, "
                 f"{rounds} interleaved rounds of 3 timed runs (median per round), "
                 f"{torch.get_num_threads()} threads. The accuracy at matched budget is not "
                 "run in this study yet."),
        measured=rows, verdict=verdict, why=why,
        caveat="CPU time depends on the machine's convolution kernels (oneDNN) and memory "
               "bandwidth; counts do not.",
        plots={"bottleneck.png": png_bytes(fig)},
        data={"macs": macs, "times_ms": times})


def _figure(rows):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    names = [r["layer"] for r in rows]
    a1.barh(names, [r["MACs (28x28)"] / 1e6 for r in rows], color="#4a7ab5")
    a1.set_xlabel("MMACs at 28x28 (analysis)")
    a2.barh(names, [r["ms / batch"] for r in rows],
            xerr=[r["spread ms"] for r in rows], color="#c46a3a")
    a2.set_xlabel("ms per batch (measured, this CPU)")
    a2.set_yticks([])
    a1.invert_yaxis()
    a2.invert_yaxis()
    fig.suptitle("Cost of a 3x3 layer and of the Inception module, with and without 1x1 "
                 "bottlenecks")
    fig.tight_layout()
    return fig


STUDY = Study(
    name="bottleneck",
    title="1x1 bottlenecks cut the cost",
    claim="Using 1x1 convolutions to reduce 256 to 64 feature maps, followed by 3x3 "
          "convolutions, followed by 1x1 convolutions to expand back to 256 maps: Total: ~70K "
          "[against] 256 x 256 x 3 x 3 ~ 600K operations",
    source="seed 002, ResNet: deeper residual module (bottleneck); seed 001, GoogLeNet: "
           "854M ops for the naive module",
    paper="He et al. 2016 (sec. 4.1): the bottleneck design keeps the time complexity of "
          "ResNet-50/101/152 below VGG-16/19 (3.8 / 7.6 / 11.3 vs 15.3 / 19.6 GFLOPs).",
    rule=f"{COUNT_RULE.text}; and, for both the single layer and the Inception module, "
         f"{TIME_RULE.text}.",
    run=run, default_seeds=1)
