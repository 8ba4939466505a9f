"""One registry for the whole zoo: `create_model`, `list_models`, `model_info`.

Each family file decorates its builders with `@register_model(...)`, putting the paper's
metadata right beside the code that builds the network (timm-style).
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch.nn as nn

from cnnzoo.models.backbone import ANALYSIS

_REGISTRY: dict[str, ModelInfo] = {}


@dataclass(frozen=True)
class ModelInfo:
    """What the lectures and the paper say about one registered network."""

    name: str
    family: str
    paper: str
    year: int
    input_size: tuple[int, int, int] = (3, 224, 224)  # default (C, H, W)
    top1_err: float | None = None  # ImageNet top-1 error (%) the case studies quote
    top5_err: float | None = None  # ImageNet top-5 error (%) the case studies quote
    # Single-model, single-crop ImageNet top-1 accuracy (%) of the reference weights at
    # input_size (e.g. torchvision's published acc@1), and where the number comes from.
    # top1_err/top5_err stay the lectures' competition quotes (partly ensembles, multi-crop).
    ref_top1_acc: float | None = None
    ref_source: str = ""
    recipe: str = "default"  # key into cnnzoo.train.recipes
    small_input: str = ""  # how 28/32-pixel inputs are handled ("" = natively small)
    notes: str = ""
    builder: Callable[..., nn.Module] | None = field(default=None, repr=False, compare=False)

    @property
    def knobs(self) -> list[str]:
        """Family knobs the builder accepts, beyond num_classes and in_chans."""
        sig = inspect.signature(self.builder)
        return [
            p for p in sig.parameters if p not in ("num_classes", "in_chans", "kwargs")
        ]

    @property
    def num_classes(self) -> int:
        """The class count the builder defaults to (1000 ImageNet, 10 LeNet/CIFAR nets)."""
        p = inspect.signature(self.builder).parameters.get("num_classes")
        return p.default if p is not None and isinstance(p.default, int) else 1000

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("builder")
        d["input_size"] = list(self.input_size)
        return d


class UnknownModelError(KeyError):
    """An unregistered model name; the message suggests the closest registered names."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0])


def register_model(family: str, paper: str, year: int, **meta):
    """Decorator: register `fn` under its function name with the paper's metadata."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = meta.pop("name", fn.__name__)
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _check_reference(name, meta.get("ref_top1_acc"), meta.get("ref_source", ""))
        _REGISTRY[name] = ModelInfo(
            name=name, family=family, paper=paper, year=year, builder=fn, **meta
        )
        return fn

    return wrap


def torchvision_ref(acc: float, weights: str, crop: int = 224, extra: str = "") -> dict:
    """`ref_top1_acc` / `ref_source` meta for torchvision's `{weights}_Weights.IMAGENET1K_V1`
    (its published acc@1), e.g. `register_model(..., **torchvision_ref(69.758, "ResNet18"))`."""
    return dict(ref_top1_acc=acc, ref_source=f"torchvision {weights}_Weights.IMAGENET1K_V1 "
                f"acc@1 (single crop {crop}{extra})")


def _check_reference(name: str, acc: float | None, source: str) -> None:
    # A reference accuracy without its source cannot be checked, so it is not accepted.
    if acc is not None and not (0.0 < acc < 100.0 and source):
        raise ValueError(f"{name}: ref_top1_acc must be a percentage with a ref_source")
    if acc is None and source:
        raise ValueError(f"{name}: ref_source given without ref_top1_acc")


def _ensure_loaded() -> None:
    # Importing the package imports every family file, which fills the registry.
    import cnnzoo.models  # noqa: F401


def model_info(name: str) -> ModelInfo:
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownModelError(
            f"unknown model {name!r}{hint} (see `cnnzoo models` for the list)"
        ) from None


def list_models(pattern: str = "*", family: str | None = None) -> list[str]:
    """Registered names matching a shell-style pattern (`"vgg*"`), in registration order."""
    _ensure_loaded()
    return [
        n
        for n, info in _REGISTRY.items()
        if fnmatch.fnmatchcase(n, pattern) and (family is None or info.family == family)
    ]


def create_model(
    name: str,
    num_classes: int | None = None,
    in_chans: int | None = None,
    *,
    input_size: tuple[int, int, int] | None = None,
    pretrained: bool = False,
    **knobs,
) -> nn.Module:
    """Build a registered network. Unknown knobs are an error naming the accepted ones.

    `num_classes` / `in_chans` left as None take the builder's own defaults (1000 classes
    and 3 channels for the ImageNet nets, 10 classes and 1 channel for LeNet-5, ...).
    `input_size=(C, H, W)` also checks, on meta tensors, that the model can take inputs of
    that size: a ShapeError naming the layer and the numbers if not.
    `pretrained=True` loads the network's published ImageNet weights (cnnzoo.models.weights:
    downloaded once into the user cache, re-hashed in full on every load) and sets
    `model.pretrained_cfg` (preprocessing, class names, published top-1). With a
    `num_classes` other than the weights' 1000 the classifier is then reset
    (`model.reset_classifier(num_classes)`): a fresh head on the pretrained body.
    """
    if pretrained:  # weights.py builds the network the weights are for, then loads them
        from cnnzoo.models.weights import create_pretrained

        return create_pretrained(name, num_classes, in_chans, input_size=input_size, **knobs)
    info = model_info(name)
    if num_classes is not None:
        knobs["num_classes"] = num_classes
    if in_chans is not None:
        knobs["in_chans"] = in_chans
    sig = inspect.signature(info.builder)
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    bad = [k for k in knobs if k not in sig.parameters and not accepts_any]
    bad = [k for k in bad if k not in ("num_classes", "in_chans")]
    if bad:
        raise TypeError(
            f"{name} does not take {', '.join(bad)}; "
            f"its knobs are: {', '.join(info.knobs) or 'none'}"
        )
    model = info.builder(**knobs)
    model.model_name = name  # lets checkpoints and reports name what they hold
    # The size feature_info is measured at: the registered one, or 32 px for a small stem.
    c = knobs.get("in_chans", info.input_size[0])
    hw = (32, 32) if knobs.get("small_input") else info.input_size[1:]
    model.default_input_size = (c, *hw)
    if input_size is not None:
        check_input(model, input_size)
    return model


def check_input(model: nn.Module, input_size: tuple[int, int, int]) -> None:
    """ShapeError if `model` cannot take (C, H, W) inputs: the stem's own limits, then (once
    cnnzoo.analysis is imported, as the package does) every layer on meta tensors."""
    if ANALYSIS.check_input is not None:
        ANALYSIS.check_input(model, tuple(input_size))
    elif hasattr(model, "check_input_size"):
        model.check_input_size(tuple(input_size))
