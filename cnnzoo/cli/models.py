"""`cnnzoo models [PATTERN]` (the zoo as a table) and `cnnzoo info NAME` (one model's card)."""

from __future__ import annotations

import argparse
import inspect
import json
import sys

import torch

from cnnzoo.models.registry import ModelInfo, create_model, list_models, model_info
from cnnzoo.train.recipes import describe, recipe_for


def count_params(info: ModelInfo) -> int:
    """Parameters at the model's own class count and input channels, built on the meta
    device so that no memory is allocated and no weights are initialised for real."""
    with torch.device("meta"):
        model = create_model(info.name, in_chans=info.input_size[0])
    return sum(p.numel() for p in model.parameters())


def format_count(n: int) -> str:
    """138357544 -> '138.4M', 61706 -> '61.7K'."""
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= div:
            return f"{n / div:.1f}{unit}"
    return str(n)


def _err(v: float | None) -> str:
    return "-" if v is None else f"{v:g}"


def _knobs(info: ModelInfo) -> dict[str, object]:
    params = inspect.signature(info.builder).parameters
    return {k: params[k].default for k in info.knobs}


def cmd_models(args: argparse.Namespace) -> int:
    pattern = args.pattern
    if not any(c in pattern for c in "*?["):  # a bare word matches as a substring
        pattern = f"*{pattern}*"
    names = list_models(pattern, family=args.family)
    if not names:
        fam = f" in family {args.family!r}" if args.family else ""
        print(f"no models match {args.pattern!r}{fam} (try `cnnzoo models`)", file=sys.stderr)
        return 1
    rows = []
    for name in names:
        info = model_info(name)
        rows.append({**info.as_dict(), "params": count_params(info), "knobs": _knobs(info)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = ["name", "family", "year", "params", "input", "top-1 err", "top-5 err", "paper"]
    table = [
        [
            r["name"], r["family"], str(r["year"]), format_count(r["params"]),
            "x".join(map(str, r["input_size"])), _err(r["top1_err"]), _err(r["top5_err"]),
            r["paper"],
        ]
        for r in rows
    ]
    widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header) - 1)]
    for row in [header, *table]:
        cells = [c.ljust(w) if i < 2 or i == 4 else c.rjust(w)
                 for i, (c, w) in enumerate(zip(row, widths))]
        print("  ".join([*cells, row[-1]]))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    info = model_info(args.name)  # UnknownModelError (exit 2, with suggestions) if unknown
    d = {**info.as_dict(), "params": count_params(info), "knobs": _knobs(info)}
    if args.json:
        print(json.dumps(d, indent=2))
        return 0
    d["params"] = f"{d['params']:,} ({format_count(d['params'])}) at " \
        f"{info.num_classes} classes"
    d["input_size"] = "x".join(map(str, info.input_size))
    d["top1_err"], d["top5_err"] = _err(info.top1_err), _err(info.top5_err)
    d["small_input"] = d["small_input"] or "natively small (no special stem)"
    d["knobs"] = ", ".join(f"{k}={v!r}" for k, v in d["knobs"].items()) or "none"
    if info.ref_top1_acc is not None:
        d["ref_top1_acc"] = f"{info.ref_top1_acc:g}% single-crop top-1 ({info.ref_source})"
    else:
        d["ref_top1_acc"] = "-"
    del d["ref_source"]
    for key, value in d.items():
        print(f"{key + ':':<13} {value}")
    # The training recipe as `cnnzoo train` would resolve it (flags override any value).
    for label, small in (("28-64 px data", True), ("larger images", False)):
        print(f"{'train, ' + label + ':':<27} {describe(recipe_for(info.recipe, small))}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the zoo: name, family, year, params, input, error")
    p.add_argument("pattern", nargs="?", default="*",
                   help="shell-style pattern like 'vgg*'; a bare word matches as a substring")
    p.add_argument("--family", help="only this family (e.g. vgg, resnet)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("info", help="one model's paper, reported error, input size and knobs")
    p.add_argument("name", help="a registered model name (see `cnnzoo models`)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_info)
