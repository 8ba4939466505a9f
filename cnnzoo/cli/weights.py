"""`cnnzoo weights list|fetch NAME...|verify NAME...`: the published ImageNet weights, their
preprocessing and top-1, and the copies in the user cache (cnnzoo.models.weights)."""

from __future__ import annotations


def cmd_list(args) -> int:
    from cnnzoo.models import weights

    rows = []
    for name in weights.available():
        w, path = weights.get(name), weights.weights_path(name)
        prep = f"{w.resize}/{w.crop} {w.interpolation}" + (" tf" if w.transform_input else "")
        cached = f"{path.stat().st_size / 2**20:.1f} MiB" if path.is_file() else "-"
        rows.append([name, f"{w.top1:.3f}", prep, cached, w.origin])
    header = ["name", "top-1", "resize/crop", "cached", "published as"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(c.ljust(n) for c, n in zip(r, widths)).rstrip())
    print(f"cache: {weights.weights_path(rows[0][0]).parent}" if rows else "no weights")
    print("tf: TF-ported weights; the model rescales its normalised input to [-1, 1]")
    return 0


def cmd_fetch(args) -> int:
    from cnnzoo.models import weights

    for name in args.names:
        path = weights.fetch(name)
        print(f"{name}: {path}\n  sha256 {weights.recorded_sha256(name)} (verified)")
    return 0


def cmd_verify(args) -> int:
    from cnnzoo.models import weights

    for name in args.names:
        digest = weights.verify(name)
        print(f"{name}: ok  sha256 {digest}  {weights.weights_path(name)}")
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("weights", help="published ImageNet weights: list, fetch, verify",
                       description="torchvision's and timm's published ImageNet weights for "
                       "the zoo's networks: downloaded once into the user cache (resumed if "
                       "interrupted), hash-checked on every load.")
    wsub = p.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    q = wsub.add_parser("list", help="models with weights: top-1, preprocessing, cached or not")
    q.set_defaults(func=cmd_list)
    for name, fn, hlp in [
        ("fetch", cmd_fetch, "download (or find in the cache) and verify, print the path"),
        ("verify", cmd_verify, "re-hash the cached file in full (a bad one is removed)"),
    ]:
        q = wsub.add_parser(name, help=hlp)
        q.add_argument("names", nargs="+", metavar="NAME", help="model name(s)")
        q.set_defaults(func=fn)
