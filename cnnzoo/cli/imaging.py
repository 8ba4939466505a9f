"""`cnnzoo filter`: run a classic kernel (Sobel, Gaussian, ...) or your own over an image."""

from __future__ import annotations

from pathlib import Path

from cnnzoo.cli.args import positive_int
from cnnzoo.errors import CnnzooError


def add_parsers(sub) -> None:
    p = sub.add_parser("filter", help="filter an image with a kernel (edges, blur, ...)",
                       description="Slide a kernel over every channel of an image "
                       "(cross-correlation, like a CNN; --flip for true convolution) and "
                       "write the result. Signed outputs (edges) are shown with 0 as mid-grey; "
                       "--kernel sobel gives the edge strength sqrt(Gx^2 + Gy^2).")
    p.add_argument("image", nargs="?", type=Path, metavar="IMAGE")
    p.add_argument("--kernel", default=None, metavar="NAME",
                   help="a kernel from --list (e.g. sobel-x, gaussian5, gaussian:2, box:5), "
                   "sobel (edge strength sqrt(Gx^2 + Gy^2) of sobel-x and sobel-y), or "
                   "'custom' with --kernel-file")
    p.add_argument("--kernel-file", type=Path, metavar="K.txt",
                   help="custom kernel: whitespace-separated rows of numbers")
    p.add_argument("--pad", default="0", metavar="N",
                   help="pixels of padding on each side, or 'same' ((F-1)/2; default 0)")
    p.add_argument("--pad-mode", default="zeros",
                   choices=["zeros", "constant", "reflect", "replicate", "circular"])
    p.add_argument("--pad-value", type=float, default=0.0,
                   help="fill value for --pad-mode constant (0..1 scale)")
    p.add_argument("--stride", type=positive_int, default=1, metavar="S")
    p.add_argument("--flip", action="store_true", help="true convolution (flip the kernel)")
    p.add_argument("--gray", action="store_true", help="convert the image to grayscale first")
    p.add_argument("--display", default="auto", choices=["auto", "clip", "signed", "abs",
                                                         "minmax"],
                   help="how outputs map to 0..255 (auto: 'abs' for sobel, 'signed' for "
                   "kernels summing to 0, else 'clip')")
    p.add_argument("-o", "--output", type=Path, metavar="OUT.png")
    p.add_argument("--list", action="store_true", help="print the kernel bank and exit")
    p.set_defaults(func=_filter)


def _list() -> int:
    from cnnzoo.imaging.filters import KERNELS, PAIRS, get_kernel

    rows = [(name, name, desc) for name, (_, desc) in KERNELS.items()]
    rows += [(name, pair[0], desc) for name, (pair, desc) in PAIRS.items()]  # its kernels' size
    for name, first, desc in rows:
        k = get_kernel(first)
        print(f"{name:<10} {k.shape[0]}x{k.shape[1]:<3} {desc}")
    print("custom     --kernel-file K.txt (whitespace-separated rows)")
    return 0


def _kernel(args):
    from cnnzoo.imaging.filters import PAIRS, get_kernel, load_kernel_file

    if args.kernel_file is not None:
        if args.kernel not in (None, "custom"):
            raise CnnzooError(f"--kernel {args.kernel} and --kernel-file both given; use "
                              "--kernel custom with --kernel-file")
        return load_kernel_file(args.kernel_file)
    if args.kernel in (None, "custom"):
        raise CnnzooError("--kernel NAME or --kernel-file K.txt is required "
                          "(see `cnnzoo filter --list`)")
    if args.kernel in PAIRS:  # its first kernel stands for the pair's size
        return get_kernel(PAIRS[args.kernel][0][0])
    return get_kernel(args.kernel)


def _padding(text: str, kernel) -> tuple[int, int]:
    from cnnzoo.analysis.arithmetic import same_padding

    if text == "same":
        return same_padding(kernel.shape[0]), same_padding(kernel.shape[1])
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise CnnzooError(f"--pad must be an integer >= 0 or 'same', got {text!r}")
    return n, n


def _filter(args) -> int:
    from cnnzoo.imaging.filters import (
        PAIRS,
        filter2d,
        gradient_magnitude,
        load_image,
        save_image,
        to_display,
    )

    if args.list:
        return _list()
    if args.image is None or args.output is None:
        raise CnnzooError("IMAGE and -o OUT.png are required (or --list)")
    kernel = _kernel(args)
    pair = args.kernel if args.kernel in PAIRS and args.kernel_file is None else None
    pad = _padding(args.pad, kernel)
    img = load_image(args.image, "L" if args.gray else None)
    # strict=False: a photo need not tile the stride exactly; floor like PyTorch.
    kw = dict(stride=args.stride, pad=pad, pad_mode=args.pad_mode, value=args.pad_value,
              flip=args.flip, strict=False)
    out = gradient_magnitude(img, pair=pair, **kw) if pair else filter2d(img, kernel, **kw)
    how = args.display
    if how == "auto":  # a magnitude is >= 0; zero-sum kernels (derivatives) are signed
        how = "abs" if pair else "signed" if abs(float(kernel.sum())) < 1e-6 else "clip"
    save_image(to_display(out, how), args.output)
    name = f"{pair} " if pair else ""
    print(f"{args.image} {img.shape[-1]}x{img.shape[-2]} -> {args.output} "
          f"{out.shape[-1]}x{out.shape[-2]} (kernel {name}{kernel.shape[0]}x{kernel.shape[1]}, "
          f"pad {pad[0]} {args.pad_mode}, stride {args.stride}, display {how})")
    return 0
