"""`cnnzoo export RUN|MODEL --onnx FILE [--pt2 FILE] [--dynamic-batch]`: a checked file."""

from __future__ import annotations

from pathlib import Path

from cnnzoo.cli.analysis import _add_builder_options
from cnnzoo.errors import CnnzooError


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "export", help="export a run or model to ONNX / torch.export, checked",
        description="Write a run's model (or a registered model with fresh weights) as ONNX "
        "and/or a torch.export program. Each file is checked before it is declared written: "
        "ONNX with onnx.checker and onnxruntime on random inputs (max |difference| < 1e-4 "
        "against PyTorch, for logits of unit scale), the program by loading it back. The "
        "run's class names and preprocessing travel in the file's metadata. ONNX needs the "
        "extra: pip install 'cnnzoo[onnx]'.")
    p.add_argument("source", metavar="RUN|MODEL", help="run folder or registered model name")
    p.add_argument("--onnx", type=Path, metavar="FILE", help="write ONNX here")
    p.add_argument("--pt2", type=Path, metavar="FILE", help="write a torch.export program here")
    p.add_argument("--dynamic-batch", action="store_true",
                   help="a free batch dimension (default: batch 1)")
    p.add_argument("--which", choices=["best", "last"], default="best",
                   help="a run's best-validation or last-epoch weights (default best)")
    p.add_argument("--input", metavar="CxHxW",
                   help="input size (default: the run's, or the model's own)")
    _add_builder_options(p)
    p.set_defaults(func=_export)


def _export(args) -> int:
    from cnnzoo.analysis import parse_input_size
    from cnnzoo.export import export_onnx, export_pt2, require_onnx
    from cnnzoo.export.source import load_source

    if not args.onnx and not args.pt2:
        raise CnnzooError("name an output: --onnx FILE and/or --pt2 FILE")
    if args.onnx:
        require_onnx()  # before loading anything: the missing extra is one line
    knobs = dict(args.knob)
    if args.small_input:
        knobs["small_input"] = True
    size = parse_input_size(args.input) if args.input else None
    model, size, meta = load_source(args.source, which=args.which, input_size=size,
                                    knobs=knobs)
    for path, fn in ((args.onnx, export_onnx), (args.pt2, export_pt2)):
        if path is None:
            continue
        r = fn(model, path, input_size=size, dynamic_batch=args.dynamic_batch, metadata=meta)
        batches = " and ".join(map(str, r.batches))
        print(f"wrote {r.path} ({r.format}, {r.bytes / 2**20:,.1f} MB, input "
              f"{'N' if args.dynamic_batch else r.batches[0]}x{'x'.join(map(str, size))}): "
              f"checked at batch {batches}, max |difference| from PyTorch {r.max_abs_diff:.2g} "
              f"(limit {r.tolerance:.2g})")
        if r.pytorch_spread is not None:
            print(f"  (an ill-conditioned net: PyTorch's own NCHW and channels-last results "
                  f"differ by {r.pytorch_spread:.2g}, so the limit is twice that)")
    return 0
