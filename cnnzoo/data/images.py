"""Reading a user's image file: one function for every path that does it (the folder dataset,
`predict`, the visualisation commands), so a photo is seen the same way in training and use.

Pillow opens the file (its decompression-bomb limit applies), the EXIF orientation is applied
(a phone photo stored sideways is seen upright), the image is converted to 1 ("L") or 3
("RGB") channels (transparent areas over white; 16-bit images keep their top 8 bits), and
resized as a `Preprocess` says.
"""

from __future__ import annotations

import dataclasses
import os
import struct
from pathlib import Path

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps

from cnnzoo.errors import CnnzooError, DataError, ShapeError

MODES = {1: "L", 3: "RGB"}
RESIZES = ("crop", "stretch")
INTERPOLATIONS = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
                  "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}


@dataclasses.dataclass(frozen=True)
class Preprocess:
    """How an image file becomes uint8 [channels, H, W]. Plain fields, so a run can record it
    (`dataclasses.asdict`) and rebuild it (`Preprocess(**d)`; a list size becomes a tuple).

    resize "crop": scale keeping the aspect ratio so the shorter side is `shorter` pixels
    (None: just enough to cover H x W), then take the centre H x W. "stretch": scale to
    exactly H x W, whatever the aspect ratio.
    """

    size: tuple[int, int]
    channels: int = 3
    resize: str = "crop"
    shorter: int | None = None
    interpolation: str = "bilinear"

    def __post_init__(self):
        size = (self.size, self.size) if isinstance(self.size, int) else tuple(self.size)
        if len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
            raise ShapeError(f"image size must be H or (H, W) of positive integers, got "
                             f"{self.size!r}")
        object.__setattr__(self, "size", size)
        if self.channels not in MODES:
            raise ShapeError(f"images are read with 1 (grayscale) or 3 (RGB) channels, not "
                             f"{self.channels}")
        if self.resize not in RESIZES:
            raise CnnzooError(f"resize must be one of {', '.join(RESIZES)}, got "
                              f"{self.resize!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise CnnzooError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got "
                              f"{self.interpolation!r}")
        if self.shorter is not None:
            if self.resize != "crop":
                raise CnnzooError("shorter applies to resize 'crop' only")
            if self.shorter < max(size):
                raise ShapeError(f"shorter side {self.shorter} is smaller than the "
                                 f"{size[0]}x{size[1]} crop")


# The ImageNet single-crop evaluation: shorter side 256, the centre 224 x 224.
IMAGENET_EVAL = Preprocess((224, 224), shorter=256)


class ImageReadError(DataError):
    """An image file that cannot be read. The message names the path; `.reason` is the
    cause alone, for callers that name the path their own way."""

    def __init__(self, path, reason: str, missing: bool = False):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}" if missing else f"{path}: cannot read image "
                         f"({reason})")


def read_image(path: str | os.PathLike, prep: Preprocess) -> torch.Tensor:
    """The file as uint8 [C, H, W], preprocessed as `prep` says (see the module doc)."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            _draft(im, prep)
            im = _convert(ImageOps.exif_transpose(im), MODES[prep.channels])
            a = np.array(_resize(im, prep), dtype=np.uint8)
    except FileNotFoundError:
        raise ImageReadError(path, "no such image file", missing=True) from None
    except (OSError, ValueError, SyntaxError, EOFError, struct.error,
            Image.DecompressionBombError) as e:
        # Pillow raises UnidentifiedImageError (an OSError), truncation and bomb errors here
        raise ImageReadError(path, str(e)) from None
    return torch.from_numpy(a[:, :, None] if a.ndim == 2 else a).permute(2, 0, 1).contiguous()


def _draft(im: Image.Image, prep: Preprocess) -> None:
    """JPEG: let the decoder shrink by 2, 4 or 8 while staying at least as large as the
    resize needs (several times faster on large photos)."""
    if im.format != "JPEG":
        return
    h, w = prep.size
    if prep.shorter:
        want = (prep.shorter, prep.shorter)
    else:  # the decoder sees the stored orientation, before the EXIF rotation
        turned = im.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8)
        want = (h, w) if turned else (w, h)
    im.draft(MODES[prep.channels], want)


def _convert(im: Image.Image, mode: str) -> Image.Image:
    if im.mode.startswith("I;16"):  # Pillow's convert would clip 16-bit values at 255
        im = Image.fromarray((np.asarray(im) >> 8).astype(np.uint8))
    if im.has_transparency_data:  # palette or alpha: over white, as a viewer shows it
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, im.convert("RGBA"))
    return im.convert(mode)


def _resize(im: Image.Image, prep: Preprocess) -> Image.Image:
    h, w = prep.size
    method = INTERPOLATIONS[prep.interpolation]
    if prep.resize == "stretch":
        return im.resize((w, h), method)
    s = prep.shorter / min(im.size) if prep.shorter else max(h / im.height, w / im.width)
    nh, nw = max(h, round(im.height * s)), max(w, round(im.width * s))
    im = im.resize((nw, nh), method)
    top, left = (nh - h) // 2, (nw - w) // 2
    return im.crop((left, top, left + w, top + h))
