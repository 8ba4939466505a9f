"""Published ImageNet weights: what to download, how to check it, and how to use it right.

    model = create_model("resnet50", pretrained=True)   # fetched once, re-hashed every load
    model.pretrained_cfg["classes"][281], model.pretrained_cfg["resize"]   # 'tabby', 256

Each entry of `WEIGHTS` (keyed by registered model name) is one published file:
- torchvision's `<Arch>_Weights.IMAGENET1K_V1` for the families laid out as torchvision's
  (its URLs; the file name carries the first hex digits of the file's sha256, which
  torchvision's own `check_hash` compares);
- timm's Inception-v4 / Inception-ResNet-v2 (`timm/<model>.tf_in1k` on the Hugging Face hub,
  `model.safetensors`), loaded through `key_map`: timm's module names -> cnnzoo's (the two
  layouts hold the same tensors in the same order). timm publishes no hash for these files.

With each file comes what it needs to be used: the preprocessing it was evaluated with
(shorter side `resize`, centre `crop`, `interpolation`, `mean`/`std`, and `transform_input`
for torchvision's TF-ported GoogLeNet / Inception-v3), the class names (torchvision's
`_IMAGENET_CATEGORIES` order, `imagenet_classes.txt`) and the published top-1 with its source.
A model built with `pretrained=True` carries all of it as `model.pretrained_cfg`.

The cache: `<user cache>/weights/<file>` (`weights_path`), plus `<file>.sha256` (sha256sum's
format) holding the full digest recorded when the file first arrived. Every load re-hashes the
whole file: it must start with the published prefix and equal the recorded digest; a file that
does not is removed and the error names the URL, the expected and the actual digest. For timm's
files (no published hash) the first digest seen is recorded and every later load must match it.
`CNNZOO_WEIGHTS_URL=<base>` fetches `<base>/<file>` instead (a mirror holding the cache names).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch.nn as nn

from cnnzoo.errors import CheckpointError, CnnzooError
from cnnzoo.models.registry import check_input, create_model, list_models, model_info
from cnnzoo.utils.download import (
    ChecksumError,
    DownloadError,
    cache_dir,
    digest_matches,
    download,
    file_digest,
)
from cnnzoo.utils.io import atomic_write_text

# The publishers' normalisations: torchvision's ImageClassification preset (ImageNet's RGB
# mean/std) and timm's IMAGENET_INCEPTION_MEAN/STD (TF-slim's scaling to [-1, 1]).
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
INCEPTION_MEAN = INCEPTION_STD = (0.5, 0.5, 0.5)
_TV = "https://download.pytorch.org/models/"
_HF = "https://huggingface.co/timm/{}/resolve/main/model.safetensors"
_TIMM_TOP1 = "timm results/results-imagenet.csv ({}, 299 px, crop_pct {}, bicubic)"


class WeightsError(CnnzooError):
    """Published weights that cannot be had or used (none for that model, no network, ...)."""


@dataclass(frozen=True)
class Weights:
    """One published weights file for a registered model."""

    url: str
    file: str  # the cache file name (unique across the table)
    sha256: str | None  # published digest or hex prefix; None: not published
    origin: str  # who published it, under what name
    top1: float  # published ImageNet-1k validation top-1 (%), single crop
    top1_source: str
    crop: int  # centre crop, H = W
    resize: int  # shorter side before the crop
    interpolation: str = "bilinear"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    transform_input: bool = False  # TF-ported: the model rescales normalised input to [-1, 1]
    classes: str | tuple[str, ...] = "imagenet-1k"  # a class-name set, or the names
    key_map: tuple[tuple[str, str], ...] = ()  # (publisher's module, cnnzoo's module)
    in_chans: int = 3

    @property
    def format(self) -> str:
        return "safetensors" if self.file.endswith(".safetensors") else "pth"


def _tv(file: str, top1: float, arch: str, crop: int = 224, resize: int = 256,
        **kw) -> Weights:
    """torchvision `<arch>_Weights.IMAGENET1K_V1`: `ImageClassification(crop_size=crop,
    resize_size=resize)` (bilinear, ImageNet mean/std) and its published acc@1."""
    origin = f"torchvision {arch}_Weights.IMAGENET1K_V1"
    return Weights(url=_TV + file, file=file, sha256=re.search(r"-([0-9a-f]{8,})\.", file)[1],
                   origin=origin, top1=top1, top1_source=f"{origin} acc@1", crop=crop,
                   resize=resize, **kw)


# timm's Inception-v4: `features` is a flat Sequential; InceptionC names its branches
# branch1_0, branch1_1a, ... where cnnzoo nests them (branch1 = [1x1, split(a, b)]).
_V4_MAP = (
    *((f"features.{i}", f"stem.{i}") for i in range(6)),  # 3 convs, Mixed3a/4a/5a
    *((f"features.{6 + i}", f"blocks_a.{i}") for i in range(4)),  # InceptionA
    ("features.10", "reduction_a"),
    *((f"features.{11 + i}", f"blocks_b.{i}") for i in range(7)),  # InceptionB
    ("features.18", "reduction_b"),
    *((f"features.{19 + i}.{timm}", f"blocks_c.{i}.{ours}") for i in range(3)
      for timm, ours in (("branch0", "branch0"), ("branch1_0", "branch1.0"),
                         ("branch1_1a", "branch1.1.a"), ("branch1_1b", "branch1.1.b"),
                         ("branch2_0", "branch2.0"), ("branch2_1", "branch2.1"),
                         ("branch2_2", "branch2.2"), ("branch2_3a", "branch2.3.a"),
                         ("branch2_3b", "branch2.3.b"), ("branch3", "branch3"))),
    ("last_linear", "fc"),
)


def _residual(timm: str, ours: str, n: int, branches: int) -> tuple[tuple[str, str], ...]:
    # timm's Block35 (3 branches) / Block17, Block8 (2) and their 1x1 `conv2d`; cnnzoo's
    # ResidualInception holds the branches in `branches` and the 1x1 as `up`.
    return tuple((f"{timm}.{i}.{a}", f"{ours}.{i}.{b}") for i in range(n)
                 for a, b in ((*((f"branch{j}", f"branches.branch{j}") for j in range(branches)),
                               ("conv2d", "up"))))


# timm's Inception-ResNet-v2 names the stem's layers after TF-slim's scopes; cnnzoo's stem
# is a Sequential with the two max-pools at 3 and 6.
_IRV2_MAP = (
    ("conv2d_1a", "stem.0"), ("conv2d_2a", "stem.1"), ("conv2d_2b", "stem.2"),
    ("conv2d_3b", "stem.4"), ("conv2d_4a", "stem.5"), ("mixed_5b", "stem.7"),
    *_residual("repeat", "blocks_a", 10, 3),
    ("mixed_6a", "reduction_a"),
    *_residual("repeat_1", "blocks_b", 20, 2),
    ("mixed_7a", "reduction_b"),
    *_residual("repeat_2", "blocks_c", 9, 2),
    ("block8.branch0", "blocks_c.9.branches.branch0"),
    ("block8.branch1", "blocks_c.9.branches.branch1"),
    ("block8.conv2d", "blocks_c.9.up"),
    ("conv2d_7b", "conv_head"),
    ("classif", "fc"),
)


def _timm(hub: str, top1: float, crop_pct: float, key_map) -> Weights:
    """timm `<hub>` (`hf_hub_id` 'timm/'): 299 px, resize floor(299 / crop_pct), bicubic,
    mean = std = 0.5 (timm's IMAGENET_INCEPTION_MEAN/STD). No hash is published."""
    return Weights(url=_HF.format(hub), file=f"{hub}.safetensors", sha256=None,
                   origin=f"timm/{hub} (Hugging Face hub)", top1=top1,
                   top1_source=_TIMM_TOP1.format(hub, crop_pct), crop=299,
                   resize=math.floor(299 / crop_pct), interpolation="bicubic", mean=INCEPTION_MEAN,
                   std=INCEPTION_STD, key_map=key_map)


WEIGHTS: dict[str, Weights] = {
    "alexnet": _tv("alexnet-owt-7be5be79.pth", 56.522, "AlexNet"),
    "vgg11": _tv("vgg11-8a719046.pth", 69.020, "VGG11"),
    "vgg11_bn": _tv("vgg11_bn-6002323d.pth", 70.370, "VGG11_BN"),
    "vgg13": _tv("vgg13-19584684.pth", 69.928, "VGG13"),
    "vgg13_bn": _tv("vgg13_bn-abd245e5.pth", 71.586, "VGG13_BN"),
    "vgg16": _tv("vgg16-397923af.pth", 71.592, "VGG16"),
    "vgg16_bn": _tv("vgg16_bn-6c64b313.pth", 73.360, "VGG16_BN"),
    "vgg19": _tv("vgg19-dcbb9e9d.pth", 72.376, "VGG19"),
    "vgg19_bn": _tv("vgg19_bn-c79401a0.pth", 74.218, "VGG19_BN"),
    "googlenet": _tv("googlenet-1378be20.pth", 69.778, "GoogLeNet", transform_input=True),
    "inception_v3": _tv("inception_v3_google-0cc3c7bd.pth", 77.294, "Inception_V3", crop=299,
                        resize=342, transform_input=True),
    "inception_v4": _timm("inception_v4.tf_in1k", 80.144, 0.875, _V4_MAP),
    "inception_resnet_v2": _timm("inception_resnet_v2.tf_in1k", 80.434, 0.8975, _IRV2_MAP),
    "resnet18": _tv("resnet18-f37072fd.pth", 69.758, "ResNet18"),
    "resnet34": _tv("resnet34-b627a593.pth", 73.314, "ResNet34"),
    "resnet50": _tv("resnet50-0676ba61.pth", 76.130, "ResNet50"),
    "resnet101": _tv("resnet101-63fe2227.pth", 77.374, "ResNet101"),
    "resnet152": _tv("resnet152-394f9c45.pth", 78.312, "ResNet152"),
    "resnext50_32x4d": _tv("resnext50_32x4d-7cdf4587.pth", 77.618, "ResNeXt50_32X4D"),
    "resnext101_32x8d": _tv("resnext101_32x8d-8ba56ff5.pth", 79.312, "ResNeXt101_32X8D"),
    # torchvision's only weights for this one use its newer recipe (resize 232)
    "resnext101_64x4d": _tv("resnext101_64x4d-173b62eb.pth", 83.246, "ResNeXt101_64X4D",
                            resize=232),
    "wide_resnet50_2": _tv("wide_resnet50_2-95faca4d.pth", 78.468, "Wide_ResNet50_2"),
    "wide_resnet101_2": _tv("wide_resnet101_2-32ee1156.pth", 78.848, "Wide_ResNet101_2"),
    "densenet121": _tv("densenet121-a639ec97.pth", 74.434, "DenseNet121"),
    "densenet169": _tv("densenet169-b2777c0a.pth", 75.600, "DenseNet169"),
    "densenet201": _tv("densenet201-c1103571.pth", 76.896, "DenseNet201"),
    "densenet161": _tv("densenet161-8d451a50.pth", 77.138, "DenseNet161"),
    "squeezenet1_0": _tv("squeezenet1_0-b66bff10.pth", 58.092, "SqueezeNet1_0"),
    "squeezenet1_1": _tv("squeezenet1_1-b8a52dc0.pth", 58.178, "SqueezeNet1_1"),
}


@cache
def imagenet_classes() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k class names in torchvision's `_IMAGENET_CATEGORIES` order (the
    sorted WordNet ids: index i is the i-th output of every ImageNet model here)."""
    text = (Path(__file__).with_name("imagenet_classes.txt")).read_text(encoding="utf-8")
    return tuple(text.splitlines())


def class_names(w: Weights) -> list[str]:
    if isinstance(w.classes, str):
        if w.classes != "imagenet-1k":
            raise ValueError(f"unknown class-name set {w.classes!r}")
        return list(imagenet_classes())
    return list(w.classes)


def available() -> list[str]:
    """Registered models with published weights, in registry order."""
    return [n for n in list_models() if n in WEIGHTS]


def get(name: str) -> Weights:
    """The table entry for `name` (an unknown name suggests the closest registered ones)."""
    model_info(name)  # UnknownModelError for a name the zoo does not have
    if name not in WEIGHTS:
        raise WeightsError(f"no published weights for {name}; models with weights: "
                           f"{', '.join(available())}")
    return WEIGHTS[name]


def weights_url(name: str) -> str:
    base = os.environ.get("CNNZOO_WEIGHTS_URL")
    w = get(name)
    return f"{base.rstrip('/')}/{w.file}" if base else w.url


def weights_path(name: str) -> Path:
    """Where `name`'s file lives in the user cache (also where to put it by hand)."""
    return cache_dir() / "weights" / get(name).file


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _recorded(path: Path) -> str | None:
    try:
        return _record_path(path).read_text().split()[0]
    except (OSError, IndexError):
        return None


def recorded_sha256(name: str) -> str | None:
    """The full sha256 recorded when `name`'s cached file arrived (None: not recorded yet)."""
    return _recorded(weights_path(name))


def _record(path: Path, digest: str) -> None:
    atomic_write_text(_record_path(path), f"{digest}  {path.name}\n")  # sha256sum -c reads it


def _remove(path: Path) -> None:
    for p in (path, _record_path(path)):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def verify(name: str) -> str:
    """Re-hash the cached file in full; return its sha256. A file that does not match the
    published prefix or the digest recorded on arrival is removed (ChecksumError)."""
    path = weights_path(name)
    if not path.is_file():
        raise WeightsError(f"{name}: not in the cache ({path}); `cnnzoo weights fetch {name}` "
                           "downloads it")
    got = file_digest(path)
    w, recorded = get(name), _recorded(path)
    for expected in (w.sha256, recorded):
        if not digest_matches(got, expected):
            _remove(path)
            raise ChecksumError(weights_url(name), "sha256", expected, got,
                                what=f"the cached file {path} was removed")
    if recorded is None:  # first sight (placed by hand, or a timm file): trust and record it
        _record(path, got)
    return got


def fetch(name: str) -> Path:
    """The verified cached file for `name`, downloaded first if it is not there."""
    path = weights_path(name)
    if path.is_file():
        verify(name)
        return path
    url = weights_url(name)
    try:
        got = download(url, path, get(name).sha256)
    except ChecksumError:
        raise
    except DownloadError as e:
        kept = (f"; the {e.partial.stat().st_size} bytes received wait in {e.partial} and the "
                "next attempt resumes them" if e.partial is not None else "")
        raise WeightsError(f"{name}: cannot download {url} ({e.reason}){kept}; without network, "
                           f"fetch that file elsewhere and save it as {path}") from None
    _record(path, got)
    return path


def _map_keys(sd: dict, key_map) -> dict:
    """Rename each key's longest matching publisher module prefix to cnnzoo's module."""
    table = dict(key_map)
    out = {}
    for key, value in sd.items():
        parts = key.split(".")
        for n in range(len(parts) - 1, 0, -1):
            ours = table.get(".".join(parts[:n]))
            if ours is not None:
                key = ".".join([ours, *parts[n:]])
                break
        out[key] = value
    return out


def pretrained_cfg(name: str, model: nn.Module | None = None) -> dict:
    """What `name`'s weights need at use: preprocessing, class names, published top-1.

    For TF-ported weights (`transform_input`) on a model built without transform_input the
    normalisation is the one the weights see ([-1, 1]: mean = std = 0.5), so the input is right
    either way."""
    w = get(name)
    mean, std = w.mean, w.std
    transform = bool(getattr(model, "transform_input", w.transform_input))
    if w.transform_input and not transform:
        mean, std = INCEPTION_MEAN, INCEPTION_STD
    return {
        "model": name, "weights": w.origin, "url": weights_url(name),
        "file": str(weights_path(name)), "input_size": [w.in_chans, w.crop, w.crop],
        "crop": w.crop, "resize": w.resize, "interpolation": w.interpolation,
        "mean": list(mean), "std": list(std), "transform_input": transform,
        "classes": class_names(w), "num_classes": len(class_names(w)),
        "top1": w.top1, "top1_source": w.top1_source,
        "model_kwargs": {"transform_input": True} if w.transform_input and transform else {},
    }


def load_pretrained(model: nn.Module, name: str | None = None) -> nn.Module:
    """Load `name`'s published weights (default: the model's registered name) into `model`,
    fetching and re-hashing the file; sets `model.pretrained_cfg`. Returns the model.

    CheckpointError names the first missing, unexpected or mis-shaped keys when the model is
    not the network the weights are for (e.g. built with small_input=True)."""
    from cnnzoo.models.pretrained import load_torchvision_weights, read_state_dict

    name = name or getattr(model, "model_name", None)
    if name is None:
        raise WeightsError("load_pretrained: name the weights (the model has no model_name)")
    w = get(name)
    path = fetch(name)
    if not w.key_map:
        load_torchvision_weights(model, path)  # its fix-ups, and errors naming the file
    else:
        sd = _map_keys(read_state_dict(path), w.key_map)
        try:
            load_torchvision_weights(model, sd)
        except CheckpointError as e:
            why = str(e).removeprefix("the state dict: ")
            raise CheckpointError(f"{path} ({w.origin}, its key names mapped to cnnzoo's): "
                                  f"{why}") from None
    model.pretrained_cfg = pretrained_cfg(name, model)
    return model


def create_pretrained(name: str, num_classes: int | None = None, in_chans: int | None = None,
                      *, input_size=None, **knobs) -> nn.Module:
    """`create_model(name, ..., pretrained=True)`: build the network the weights are for,
    load them, then with `num_classes` other than the weights' a fresh classifier
    (`model.reset_classifier`; `pretrained_cfg["classes"]` is then None)."""
    w = get(name)
    if in_chans is not None and in_chans != w.in_chans:
        raise WeightsError(f"{name}: the published weights take {w.in_chans}-channel input, "
                           f"not in_chans={in_chans}")
    if w.transform_input:  # torchvision's builders do the same; an explicit False is kept
        knobs.setdefault("transform_input", True)
    n = len(class_names(w))
    model = load_pretrained(create_model(name, n, **knobs), name)
    if num_classes is not None and num_classes != n:
        cfg = model.pretrained_cfg
        if hasattr(model, "reset_classifier"):
            model.reset_classifier(num_classes)
        else:  # a family without the Backbone vocabulary: a new model takes all but the head
            new = create_model(name, num_classes, **knobs)
            own = new.state_dict()
            new.load_state_dict({k: v for k, v in model.state_dict().items()
                                 if v.shape == own[k].shape}, strict=False)
            model = new
        model.pretrained_cfg = {**cfg, "classes": None, "num_classes": num_classes}
    if input_size is not None:
        check_input(model, input_size)
    return model
