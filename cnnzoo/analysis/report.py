"""Plain-text rendering of a Profile: the per-layer table and the totals."""

from __future__ import annotations

import math

from cnnzoo.analysis.profile import Profile

# The lecture's VGG-16 memory slide (seed 001) quotes this total; see docs/analysis.md.
LECTURE_VGG16_MEMORY = "~24M x 4 bytes = 96MB/image"
LECTURE_TYPES = ("Input", "Conv2d", "MaxPool2d", "Linear")  # what the slide's list counts
# The slide's own per-layer "memory" list at 224x224: input, 13 conv, 5 pool, 3 FC outputs.
LECTURE_VGG16_LIST = (
    [224 * 224 * 3] + [224 * 224 * 64] * 2 + [112 * 112 * 64] + [112 * 112 * 128] * 2
    + [56 * 56 * 128] + [56 * 56 * 256] * 3 + [28 * 28 * 256] + [28 * 28 * 512] * 3
    + [14 * 14 * 512] * 4 + [7 * 7 * 512] + [4096, 4096, 1000]
)


def human(n: float, unit: str = "") -> str:
    """1_234_567 -> '1.23M'; bytes with unit='B' -> '4.9 MB' (decimal, like the slides)."""
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.2f} {suffix}{unit}" if unit else f"{n / div:.2f}{suffix}"
    return f"{n:.0f} {unit}" if unit else f"{n:.0f}"


def shape_str(shape) -> str:
    return "x".join(str(s) for s in shape)


def lecture_memory_note(p: Profile) -> str:
    """How the tool's per-image memory relates to the lecture's VGG-16 '24M x 4 bytes'.

    Only meaningful for the slide's network and input (vgg16 at 3x224x224)."""
    slide = sum(LECTURE_VGG16_LIST)
    listed = sum(r.activations for r in p.layers if r.type in LECTURE_TYPES)
    relu = sum(math.prod(r.output_shape) for r in p.layers if r.type == "ReLU")
    found = "exactly that" if listed == slide else f"{human(listed)} (another layout)"
    return (
        f"lecture: VGG-16 memory {LECTURE_VGG16_MEMORY}. The slide's own per-layer list (input "
        f"+ conv, pool and FC outputs) sums to {human(slide)} values x 4 bytes = "
        f"{human(4 * slide, 'B')}; this tool finds {found} for those layers, "
        f"{human(p.activations)} in all (with the adaptive-pool output). Even a separate ReLU "
        f"output per layer (no in-place ReLU) gives {human(listed + relu)}, not 24M: the "
        f"slide's total is an arithmetic slip."
    )


def format_profile(p: Profile, batch: int = 1, optimizer: str = "momentum",
                   layers: bool = True) -> str:
    cols = ("layer", "type", "window", "output", "params", "activations", "act bytes", "MACs",
            "RF", "jump")
    rows = [
        (r.name, r.type, r.window, shape_str(r.output_shape), f"{r.params:,}",
         f"{r.activations:,}", human(r.activation_bytes, "B") if r.activation_bytes else "0",
         human(r.macs), str(r.rf), str(r.jump))
        for r in p.layers
    ] if layers else []
    out = []
    if rows:
        widths = [min(max(len(c), *(len(r[i]) for r in rows)), 40) for i, c in enumerate(cols)]
        right = {4, 5, 6, 7, 8, 9}

        def line(vals):
            return "  ".join(
                (v.rjust(w) if i in right else v[:w].ljust(w)) for i, (v, w) in
                enumerate(zip(vals, widths))
            ).rstrip()

        out += [line(cols), line(["-" * w for w in widths]), *map(line, rows), ""]
    mem = p.training_memory(batch, optimizer)
    last = p.layers[-1]
    out += [
        f"model            {p.model} at {shape_str(p.input_size)}, {p.dtype}",
        f"params           {p.params:,} ({p.trainable_params:,} trainable, "
        f"{p.frozen_params:,} frozen), {human(p.param_bytes, 'B')}",
        f"MACs / image     {p.macs:,} ({human(p.macs)}; conv + linear multiply-accumulates)",
        f"FLOPs / image    {p.flops:,} ({human(p.flops)} = 2 x MACs)",
        f"activations      {p.activations:,} values = {human(p.activation_bytes, 'B')} per image "
        "(forward, every layer output needing new memory, input included)",
        f"receptive field  {last.rf}{' px' if last.rf != 'n/a' else ''} at the output, "
        f"effective stride {last.jump}",
        f"training memory  batch {batch}, {optimizer}: {human(mem['total'], 'B')} = weights "
        f"{human(mem['weights'], 'B')} + grads {human(mem['gradients'], 'B')} + optimizer "
        f"{human(mem['optimizer_state'], 'B')} + saved activations "
        f"{human(mem['activations'], 'B')}",
    ]
    if p.model == "vgg16" and p.input_size == (3, 224, 224):
        out.append(lecture_memory_note(p))
    out += [f"note: {n}" for n in p.notes]
    return "\n".join(out)
