"""`cnnzoo viz ...`: look inside a trained network; each command writes one PNG (-o OUT.png)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from cnnzoo.cli.args import positive_int
from cnnzoo.errors import CnnzooError


def _common(p, image: bool = False) -> None:
    p.add_argument("run", type=Path, metavar="RUN", help="run folder")
    if image:
        p.add_argument("image", type=Path, metavar="IMAGE", help="image file (png, jpg, ...)")
    p.add_argument("-o", "--out", type=Path, required=True, metavar="OUT.png",
                   help="the PNG to write")
    p.add_argument("--which", choices=["best", "last"], default="best",
                   help="best-validation or last-epoch weights (default best)")


def add_parsers(sub) -> None:
    viz = sub.add_parser("viz", help="look inside a trained network (filters, activations, "
                         "top patches, saliency, variance)",
                         description="Pictures of what a network computes, each written to "
                         "-o OUT.png.")
    vsub = viz.add_subparsers(dest="viz_command", metavar="WHAT", required=True)

    p = vsub.add_parser("filters", help="a conv layer's kernels as a grid, and across epochs",
                        description="The kernels of a conv layer (the first by default; one "
                        "colour tile per filter for RGB input), and the trainer's grids of the "
                        "first layer across epochs (RUN/filters).")
    _common(p)
    p.add_argument("--layer", metavar="L", help="conv layer name (default: the first conv)")
    p.set_defaults(func=_filters)

    p = vsub.add_parser("activations", help="a layer's feature maps for one image")
    _common(p, image=True)
    p.add_argument("--layer", required=True, metavar="L", help="layer name (e.g. c3, layer2)")
    p.set_defaults(func=_activations)

    p = vsub.add_parser("top-patches", help="the images that excite one channel most",
                        description="The k test images whose channel C of layer L reaches "
                        "the largest activation (one streaming pass), each cropped to the "
                        "receptive field of the unit where it peaks (Zeiler & Fergus 2014).")
    _common(p)
    p.add_argument("--layer", required=True, metavar="L")
    p.add_argument("--channel", required=True, type=int, metavar="C")
    p.add_argument("--dataset", help="dataset name (default: the run's), its test split")
    p.add_argument("--data-dir", help="dataset folder (default: the run's, then the cache)")
    p.add_argument("-k", type=positive_int, default=9, help="images to show (default 9)")
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument("--device", default="auto", help="cpu, cuda, mps or auto (default)")
    p.set_defaults(func=_top_patches)

    p = vsub.add_parser("saliency", help="gradient saliency / Grad-CAM over an image",
                        description="Where the class score comes from: |gradient| (grad), "
                        "Grad-CAM or Grad-CAM++ at a layer (default: the last stage). "
                        "--sanity also draws the map of the same network with random "
                        "weights and prints their rank correlation (Adebayo et al. 2018).")
    _common(p, image=True)
    p.add_argument("--method", choices=["grad", "gradcam", "gradcam++"], default="gradcam")
    p.add_argument("--class", dest="target", type=int, metavar="K",
                   help="class index to explain (default: the predicted one)")
    p.add_argument("--layer", metavar="L", help="Grad-CAM layer (default: the last stage)")
    p.add_argument("--sanity", action="store_true",
                   help="model-randomisation check: same map with random weights")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    p.set_defaults(func=_saliency)

    p = vsub.add_parser("variance", help="activation variance by layer (run, or an untrained "
                        "model under an initialisation)",
                        description="RUN: the monitor's activation variance per layer at each "
                        "epoch. MODEL (a zoo name) or 'plain' (the lecture's 10-layer tanh "
                        "net): untrained, weights drawn by --init, on N(0, 1) input.")
    p.add_argument("target", metavar="RUN|MODEL", help="run folder, model name, or 'plain'")
    p.add_argument("-o", "--out", type=Path, required=True, metavar="OUT.png")
    p.add_argument("--init", type=_inits, metavar="small,xavier,he",
                   help="initialisations to compare, comma-separated (default all three); "
                   "small = N(0, 0.01^2), xavier = N(0, 1/fan_in), he = N(0, 2/fan_in)")
    p.add_argument("--act", choices=["tanh", "relu"],
                   help="nonlinearity of 'plain' (default tanh)")
    p.add_argument("--all-layers", action="store_true",
                   help="conv / linear outputs too, not only the activation layers")
    p.set_defaults(func=_variance)


def _inits(text: str) -> tuple[str, ...]:
    from cnnzoo.viz.variance import INITS

    names = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [n for n in names if n not in INITS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"{', '.join(bad) or repr(text)}: choose from "
                                         f"{', '.join(INITS)}")
    return names


def _title(args, model: str) -> str:
    return f"{model} ({args.run.name})"


def _filters(args) -> int:
    from cnnzoo.viz.filters import plot_filters, run_filters

    f = run_filters(args.run, args.layer, which=args.which)
    print(f"{f.model} {f.layer}: {list(f.weight.shape)} kernels, {len(f.epochs)} saved epoch "
          "grids")
    print(f"wrote {plot_filters(f, args.out)}")
    return 0


def _activations(args) -> int:
    from cnnzoo.viz.activations import plot_activations, run_activations

    a = run_activations(args.run, args.image, args.layer, which=args.which)
    print(f"{args.layer}: {'x'.join(map(str, a.maps.shape))}, mean {a.maps.mean():.3g}, "
          f"max {a.maps.max():.3g}")
    print(f"wrote {plot_activations(a, args.out, title=_title(args, a.model))}")
    return 0


def _top_patches(args) -> int:
    from cnnzoo.utils.device import pick_device
    from cnnzoo.viz.top_patches import plot_top_patches, run_top_patches

    t = run_top_patches(args.run, args.layer, args.channel, dataset=args.dataset,
                        data_dir=args.data_dir, k=args.k, which=args.which,
                        batch_size=args.batch_size, device=pick_device(args.device))
    print(f"{args.layer} channel {args.channel}: top {len(t.patches)} of {t.seen} images, "
          f"receptive field {t.field.rf.rf} px")
    for p in t.patches:
        name = t.classes[p.label] if t.classes else p.label
        print(f"  #{p.index:<6} {p.value:9.4g}  at {p.position}  window {p.window}  {name}")
    print(f"wrote {plot_top_patches(t, args.out, title=args.run.name)}")
    return 0


def _saliency(args) -> int:
    from cnnzoo.viz.saliency import plot_saliency, run_saliency

    r = run_saliency(args.run, args.image, method=args.method, target=args.target,
                     layer=args.layer, sanity=args.sanity, seed=args.seed, which=args.which)
    s = r.saliency

    def name(k):
        return f"{r.classes[k]} ({k})" if r.classes else str(k)

    where = f" at {s.layer}" if s.layer else ""
    print(f"{args.method}{where}: class {name(int(s.target))}, logit {float(s.score):.4g}; "
          f"predicted {name(int(s.predicted))}")
    if r.sanity is not None:
        rho = r.sanity.spearman
        verdict = ("n/a (a constant map)" if math.isnan(rho) else f"{rho:.3f}" + (
            ": the map barely depends on the weights" if rho > 0.5 else ""))
        print(f"rank correlation with randomised weights: {verdict}")
    out = plot_saliency(r.image, s, args.out, classes=r.classes, sanity=r.sanity,
                        title=_title(args, r.model))
    print(f"wrote {out}")
    return 0


def _variance(args) -> int:
    from cnnzoo.viz.variance import INITS, init_variance, plot_variance, run_variance

    target = args.target
    if Path(target).is_dir() or "/" in target:  # a run folder (or a mistyped path to one)
        if args.init or args.act:
            raise CnnzooError("--init and --act apply to an untrained MODEL, not a run folder")
        v = run_variance(target, activations_only=not args.all_layers)
    else:
        if args.act and target != "plain":
            raise CnnzooError("--act applies to 'plain' only (a zoo model has its own)")
        v = init_variance(target, args.init or INITS, act=args.act or "tanh",
                          activations_only=not args.all_layers)
    labels = list(v.series)
    if len(labels) > 6:  # a long run: six epochs, first and last among them
        labels = [labels[round(i * (len(labels) - 1) / 5)] for i in range(6)]
    width = max(len(n) for n in v.layers)
    print(f"{'layer':<{width}}  " + "  ".join(f"{k:>12}" for k in labels))
    for i, n in enumerate(v.layers):
        print(f"{n:<{width}}  " + "  ".join(f"{v.series[k][i]:12.3e}" for k in labels))
    print(f"wrote {plot_variance(v, args.out)}")
    return 0
