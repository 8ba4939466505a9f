"""`cnnzoo summary`, `cnnzoo compare`, `cnnzoo conv`: what a network costs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cnnzoo.cli.args import knob, positive_int
from cnnzoo.errors import CnnzooError, ShapeError


def _add_builder_options(p) -> None:
    p.add_argument("--small-input", action="store_true",
                   help="build with small_input=True (the 28/32-pixel stem) where the model "
                   "has that knob")
    p.add_argument("--knob", type=knob, action="append", default=[], metavar="KEY=VALUE",
                   help="a builder option, repeatable (e.g. --knob dropout=0.2); values are "
                   "read as int, float, true/false or text")


def add_parsers(sub) -> None:
    p = sub.add_parser("summary", help="per-layer params, activations, MACs, receptive field",
                       description="Profile a model on meta tensors (no real activations): "
                       "per-layer table and totals, training-memory estimate for a batch.")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--input", metavar="CxHxW", help="input size (default: the model's own)")
    p.add_argument("--batch", type=positive_int, default=1,
                   help="batch size of the training-memory estimate (default 1)")
    p.add_argument("--optimizer", default="momentum",
                   choices=["sgd", "momentum", "adam", "adamw", "rmsprop"],
                   help="optimizer state of the estimate (default momentum: 1 copy)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"],
                   help="dtype of weights and activations: sets every byte count (MACs do not "
                   "change); the estimate keeps weights, grads and optimizer state in it too "
                   "(no float32 master copy as in mixed precision)")
    p.add_argument("--num-classes", type=positive_int, default=None)
    p.add_argument("--totals", action="store_true", help="totals only, no per-layer table")
    p.add_argument("--json", action="store_true", help="print the profile as JSON")
    _add_builder_options(p)
    p.set_defaults(func=_summary)

    p = sub.add_parser("compare", help="params, MACs, memory, accuracy of several models",
                       description="Side-by-side table and the lectures' 'comparing "
                       "complexity' bubble chart (single-crop top-1 accuracy vs operations, "
                       "area = params).")
    p.add_argument("models", nargs="+", metavar="MODEL")
    p.add_argument("--input", metavar="CxHxW", help="one input size for all (default: each "
                   "model's own)")
    p.add_argument("--latency", action="store_true",
                   help="also time a real CPU forward at batch 1 (slow for big models)")
    p.add_argument("--plot", type=Path, metavar="FILE.png", help="write the bubble chart")
    p.add_argument("--json", action="store_true")
    _add_builder_options(p)
    p.set_defaults(func=_compare)

    p = sub.add_parser("conv", help="conv/pool output size: (W - F + 2P)/S + 1",
                       description="Output size of a conv or pool; 'does not fit' when the "
                       "stride does not tile the input.")
    p.add_argument("--input", required=True, type=int, metavar="W", help="input width")
    p.add_argument("--kernel", required=True, type=int, metavar="F")
    p.add_argument("--stride", type=int, default=1, metavar="S")
    p.add_argument("--pad", default="0", metavar="P", help="padding, or 'same'")
    p.add_argument("--dilation", type=int, default=1)
    p.set_defaults(func=_conv)


def _input(args):
    from cnnzoo.analysis import parse_input_size

    return parse_input_size(args.input) if args.input else None


def _hint(e: ShapeError, args, names: list[str]) -> ShapeError:
    """Point a too-small-input error at the CLI's own spelling of the builder option."""
    from cnnzoo.models.registry import model_info

    text = str(e)
    if args.small_input or not any("small_input" in model_info(n).knobs for n in names):
        return e
    if "small_input" in text:
        return ShapeError(f"{text}; on the command line: --small-input")
    if "does not fit" in text or "too small" in text:
        return ShapeError(f"{text} (for small images try --small-input)")
    return e


def _summary(args) -> int:
    from cnnzoo.analysis import profile
    from cnnzoo.analysis.report import format_profile

    knobs = dict(args.knob)
    if args.small_input:
        knobs["small_input"] = True
    try:
        p = profile(args.model, _input(args), dtype=args.dtype, num_classes=args.num_classes,
                    **knobs)
    except ShapeError as e:
        raise _hint(e, args, [args.model]) from None
    if args.json:
        print(json.dumps(p.as_dict(args.batch, args.optimizer), indent=2))
    else:
        print(format_profile(p, args.batch, args.optimizer, layers=not args.totals))
    return 0


def _compare(args) -> int:
    from cnnzoo.analysis.compare import bubble_chart, compare
    from cnnzoo.analysis.report import human

    try:
        rows = compare(args.models, _input(args), latency=args.latency, knobs=dict(args.knob),
                       small_input=args.small_input)
    except ShapeError as e:
        raise _hint(e, args, args.models) from None
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=2))
    else:
        head = f"{'model':<20} {'input':>11} {'params':>13} {'MACs':>16} {'act/img':>10}"
        head += f" {'latency':>10}" * args.latency
        head += f" {'top-1':>6} {'lect. top-5 err':>15}  top-1 source"
        print(head)
        for r in rows:
            acc = f"{r.top1_acc:.1f}%" if r.top1_acc is not None else "-"
            top5 = f"{r.lecture_top5_err:g}%" if r.lecture_top5_err is not None else "-"
            lat = f" {r.latency_ms:>7.1f} ms" if r.latency_ms is not None else ""
            print(f"{r.model:<20} {'x'.join(map(str, r.input_size)):>11} {r.params:>13,} "
                  f"{r.macs:>16,} {human(r.activation_bytes, 'B'):>10}{lat} {acc:>6} "
                  f"{top5:>15}  {r.top1_source or '-'}")
        print("top-1: single model, single crop, reference weights, at the model's own input "
              "size (left out when --input or a builder option changes the network); lect. "
              "top-5 err: the lectures' ILSVRC quote (partly ensembles, multi-crop), not "
              "comparable with top-1 and not plotted")
    if args.plot:
        points = bubble_chart(rows, args.plot)
        missing = [r.model for r in rows if r.top1_acc is None]
        print(f"wrote {args.plot} ({len(points)} of {len(rows)} models plotted"
              + (f"; no reference top-1, table only: {', '.join(missing)})" if missing
                 else ")"), file=sys.stderr if args.json else sys.stdout)
    return 0


def _conv(args) -> int:
    from cnnzoo.analysis import conv_output_size, same_padding

    if args.pad == "same":
        if args.stride != 1:
            raise CnnzooError("--pad same keeps the size only at --stride 1")
        pad = same_padding(args.kernel, args.dilation)
    else:
        try:
            pad = int(args.pad)
        except ValueError:
            raise CnnzooError(f"--pad {args.pad!r} is not an integer or 'same'") from None
    out = conv_output_size(args.input, args.kernel, args.stride, pad, args.dilation)
    k = args.dilation * (args.kernel - 1) + 1
    print(f"({args.input} - {k} + 2*{pad})/{args.stride} + 1 = {out}"
          + (f"  (padding {pad} = 'same')" if args.pad == "same" else ""))
    return 0
