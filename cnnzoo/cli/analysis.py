"""`cnnzoo summary`, `cnnzoo compare`, `cnnzoo conv`: what a network costs."""

from __future__ import annotations

import json
from pathlib import Path

from cnnzoo.cli.args import positive_int
from cnnzoo.errors import CnnzooError


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
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--num-classes", type=positive_int, default=None)
    p.add_argument("--totals", action="store_true", help="totals only, no per-layer table")
    p.add_argument("--json", action="store_true", help="print the profile as JSON")
    p.set_defaults(func=_summary)

    p = sub.add_parser("compare", help="params, MACs, memory, accuracy of several models",
                       description="Side-by-side table and the lectures' 'comparing "
                       "complexity' bubble chart (accuracy vs operations, area = params).")
    p.add_argument("models", nargs="+", metavar="MODEL")
    p.add_argument("--input", metavar="CxHxW", help="one input size for all (default: each "
                   "model's own)")
    p.add_argument("--latency", action="store_true",
                   help="also time a real CPU forward at batch 1 (slow for big models)")
    p.add_argument("--plot", type=Path, metavar="FILE.png", help="write the bubble chart")
    p.add_argument("--json", action="store_true")
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


def _summary(args) -> int:
    from cnnzoo.analysis import profile
    from cnnzoo.analysis.report import format_profile

    p = profile(args.model, _input(args), dtype=args.dtype, num_classes=args.num_classes)
    if args.json:
        print(json.dumps(p.as_dict(args.batch, args.optimizer), indent=2))
    else:
        print(format_profile(p, args.batch, args.optimizer, layers=not args.totals))
    return 0


def _compare(args) -> int:
    from cnnzoo.analysis.compare import bubble_chart, compare
    from cnnzoo.analysis.report import human

    rows = compare(args.models, _input(args), latency=args.latency)
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=2))
    else:
        head = f"{'model':<20} {'input':>11} {'params':>13} {'MACs':>16} {'act/img':>10}"
        head += f" {'latency':>10}" * args.latency + "  ImageNet acc (paper)"
        print(head)
        for r in rows:
            acc = f"{r.accuracy:.1f}% {r.accuracy_kind}" if r.accuracy is not None else "-"
            lat = f" {r.latency_ms:>7.1f} ms" if r.latency_ms is not None else ""
            print(f"{r.model:<20} {'x'.join(map(str, r.input_size)):>11} {r.params:>13,} "
                  f"{r.macs:>16,} {human(r.activation_bytes, 'B'):>10}{lat}  {acc}")
    if args.plot:
        n = bubble_chart(rows, args.plot)
        print(f"wrote {args.plot} ({n} of {len(rows)} models have a published accuracy)")
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
