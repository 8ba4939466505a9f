"""Per-layer profile of a network on meta tensors: shapes, params, activations, MACs, RF.

The model runs once on the `meta` device (shapes and dtypes, no data), so profiling VGG-16
or Inception-v4 allocates no real activations (and no real weights: a user's module is
copied to meta without cloning its tensors). A TorchDispatchMode sees every aten op: it
counts multiply-accumulates of convolutions and matrix products, propagates the receptive
field per tensor, and checks each conv/pool's arithmetic so that an input a layer cannot
take raises ShapeError ("does not fit", with the numbers) instead of a torch RuntimeError.
`check_input` runs the same pass to vet an input size before a model is built or trained.
Forward hooks name the rows after the leaf modules; ops run directly by a container
(torch.cat in Inception, an out-of-place add in a residual block) get rows of their own.

Conventions (see docs/analysis.md): MACs count conv + linear/matmul multiply-accumulates,
which is what the ResNet and ResNeXt tables call FLOPs; FLOPs = 2 x MACs. Activations count
each layer output that needs new memory (an in-place ReLU or a flatten view adds none).
"""

from __future__ import annotations

import copy
import itertools
import math
import warnings
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.weak import WeakTensorKeyDictionary

from cnnzoo.analysis.arithmetic import conv_output_shape
from cnnzoo.analysis.receptive import RF, propagate, window
from cnnzoo.errors import CnnzooError, ShapeError

# Optimizer state per weight, in weight-sized copies (SGD momentum buffer, Adam's m and v).
OPTIMIZER_STATE = {"sgd": 0, "momentum": 1, "adam": 2, "adamw": 2, "rmsprop": 1}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
          "float64": torch.float64}


@dataclass
class Layer:
    """One row of the table: a leaf module call, or an op run directly by a container."""

    name: str
    type: str
    window: str = ""  # "3x3 s1 p1" for convs and pools
    output_shape: tuple[int, ...] = ()  # per image, no batch dimension
    params: int = 0
    activations: int = 0  # values of new memory this layer's output needs, per image
    activation_bytes: int = 0
    macs: int = 0  # multiply-accumulates of conv / linear / matmul, per image
    rf: int | str = 1  # receptive field in input pixels ("HxW" if not square)
    jump: int | str = 1  # effective stride: input pixels between neighbouring outputs


@dataclass
class Profile:
    """Totals and rows of one network at one input size (per image unless stated)."""

    model: str
    input_size: tuple[int, int, int]
    dtype: str
    layers: list[Layer]
    params: int
    trainable_params: int
    param_bytes: int
    macs: int
    activations: int
    activation_bytes: int
    saved_bytes: int | None  # autograd's saved tensors per image in a training step
    notes: list[str] = field(default_factory=list)

    @property
    def frozen_params(self) -> int:
        return self.params - self.trainable_params

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def training_memory(self, batch: int = 1, optimizer: str = "momentum") -> dict[str, int]:
        """Bytes of one training step: weights + grads + optimizer state + saved activations.

        Gradients exist for trainable weights only; saved activations scale with the batch.
        Ignores allocator slack, cuDNN workspaces and the transient gradient buffers of the
        backward pass (each at most about one layer's activations).
        """
        if optimizer not in OPTIMIZER_STATE:
            raise CnnzooError(
                f"unknown optimizer {optimizer!r}; one of {', '.join(OPTIMIZER_STATE)}"
            )
        per_value = self.param_bytes // max(self.params, 1)
        trainable_bytes = self.trainable_params * per_value
        saved = self.saved_bytes if self.saved_bytes is not None else self.activation_bytes
        mem = {
            "weights": self.param_bytes,
            "gradients": trainable_bytes,
            "optimizer_state": OPTIMIZER_STATE[optimizer] * trainable_bytes,
            "activations": saved * batch,
        }
        mem["total"] = sum(mem.values())
        return mem

    def as_dict(self, batch: int = 1, optimizer: str = "momentum") -> dict:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["frozen_params"] = self.frozen_params
        d["flops"] = self.flops
        d["training_memory"] = {"batch": batch, "optimizer": optimizer,
                                **self.training_memory(batch, optimizer)}
        for row in d["layers"]:
            row["output_shape"] = list(row["output_shape"])
        return d



class MetaUnsupported(CnnzooError):
    """The forward needs real data (`.item()`, a data-dependent shape) or makes real tensors,
    so it cannot run on meta tensors. Not a problem of the input size."""


def _storage_key(t: torch.Tensor) -> int:
    return t.untyped_storage()._cdata  # views share it; meta tensors have no data_ptr


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)


def _join(values) -> str:
    values = [str(v) for v in values]
    return values[0] if len(set(values)) == 1 else "x".join(values)


def _fmt_window(win, groups: int = 1) -> str:
    text = f"{'x'.join(map(str, win.kernel))} s{_join(win.stride)} p{_join(win.padding)}"
    if set(win.dilation) != {1}:
        text += f" d{_join(win.dilation)}"
    if groups > 1:
        text += f" g{groups}"
    if win.ceil_mode:  # the size is rounded up: (112 - 3)/2 + 1 = 55.5 -> 56
        text += " ceil"
    return text + (" T" if win.kind == "transposed" else "")


def _shape(t: torch.Tensor) -> str:
    return "x".join(map(str, t.shape)) or "scalar"


def _macs(func, args, out) -> int:
    """Multiply-accumulates by formula: conv = out values x (C_in / groups) x kH x kW."""
    op = func.__name__.split(".")[0]
    if op == "convolution":
        w = args[1]
        if args[6]:  # transposed: each input value meets (C_out / groups) x kH x kW weights
            return args[0].numel() * math.prod(w.shape[1:])
        return out.numel() * math.prod(w.shape[1:])
    if op in ("mm", "addmm"):
        a, b = args[-2], args[-1]
        return a.shape[0] * a.shape[1] * b.shape[1]
    if op in ("bmm", "baddbmm"):
        a, b = args[-2], args[-1]
        return a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]
    return 0


class _Tracer(TorchDispatchMode):
    """Sees every aten op of the forward: MACs, conv arithmetic, RF, who allocated what."""

    def __init__(self, model_name: str):
        super().__init__()
        self.model_name = model_name
        self.rf = WeakTensorKeyDictionary()
        self.owner: dict[int, Layer] = {}  # storage -> the row whose op allocated it
        self.keep: list[torch.Tensor] = []  # keep storages alive so keys are never reused
        self.stack: list[tuple[str, Layer | None]] = []  # (module name, leaf row or None)
        self.rows: list[Layer] = []
        self.floored: list[str] = []
        self.failure: tuple | None = None  # (exception, op, tensor args, layer) of a failed op
        self.captured: dict[str, tuple] = {}  # module name -> (output shape, RF), see _trace

    def current(self) -> tuple[str, Layer | None]:
        return self.stack[-1] if self.stack else ("", None)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        where, row = self.current()
        layer = row.name if row is not None else where or "<root>"
        win = window(func, args)
        if win is not None and win.kind in ("conv", "pool"):
            self._check(win, args[0], layer)
        try:
            out = func(*args, **kwargs)
        except Exception as e:  # kept so that _trace can tell an op's refusal from a bug
            self.failure = (e, func, list(_tensors((args, kwargs))), layer)
            raise
        outs = list(_tensors(out))
        if not outs:
            return out
        first = outs[0]
        macs = _macs(func, args, first)
        inputs = [(t, self.rf.get(t, RF())) for t in _tensors((args, kwargs)) if t in self.rf]
        field_ = propagate(func, args, inputs, first)
        new = [t for t in outs if _storage_key(t) not in self.owner]
        if row is None and (macs or win or (new and first.is_floating_point() and first.ndim >= 2)):
            op = func.__name__.split(".")[0]
            row = Layer(f"{where}.<{op}>" if where else f"<{op}>", op)
            row.output_shape = tuple(first.shape[1:])
            row.rf, row.jump = field_.rf, field_.jump
            if _storage_key(first) not in self.owner:
                row.activations = first[0].numel() if first.ndim else 1
                row.activation_bytes = row.activations * first.element_size()
            self.rows.append(row)
        if row is not None:
            row.macs += macs
            if win is not None and not row.window:
                groups = args[8] if func.__name__.startswith("convolution") else 1
                row.window = _fmt_window(win, groups)
        for t in new:
            self.owner[_storage_key(t)] = row
            self.keep.append(t)
        for t in outs:
            self.rf[t] = field_
        return out

    def _check(self, win, x, layer) -> None:
        """PyTorch's own rule (floor, or ceil for ceil_mode pools), with the numbers."""
        kind = "pool" if win.kind == "pool" else "filter"
        sizes = [int(v) for v in x.shape[2:]]
        try:
            conv_output_shape(sizes, win.kernel, win.stride, win.padding, win.dilation,
                              ceil_mode=win.ceil_mode, strict=False, what=kind)
        except ShapeError as e:
            raise ShapeError(f"{self.model_name}: layer {layer}: {e}") from None
        if win.ceil_mode:
            return
        for size, k, s, p, d in zip(sizes, win.kernel, win.stride, win.padding, win.dilation):
            span = size - (d * (k - 1) + 1) + 2 * p
            if span % s:  # report a layer once, not once per axis
                self.floored.append(
                    f"{layer}: ({size} - {k} + 2*{p})/{s} + 1 = {span / s + 1:.2f} -> "
                    f"{span // s + 1}")
                return


def meta_copy(module: nn.Module) -> nn.Module:
    """A copy of `module` with every parameter and buffer on the meta device.

    The module itself is never changed. copy.deepcopy(module).to("meta") would clone every
    real weight on the CPU first (VGG-16: +530 MB); instead deepcopy's memo is seeded with a
    meta twin of each parameter and buffer, so only the module structure is copied (and
    weights shared between layers stay shared).
    """
    memo = {}
    for t in itertools.chain(module.parameters(), module.buffers()):
        twin = torch.empty_like(t, device="meta")
        memo[id(t)] = nn.Parameter(twin, t.requires_grad) if isinstance(t, nn.Parameter) \
            else twin
    return copy.deepcopy(module, memo)


def _size_arg(input_size, arg: str = "input_size") -> tuple[int, int, int]:
    try:
        size = tuple(int(v) for v in input_size)
    except (TypeError, ValueError):
        size = ()
    if len(size) != 3 or min(size) < 1 or size != tuple(input_size):
        raise ShapeError(f"{arg} {input_size!r} is not (C, H, W) with positive integers")
    return size


def _failure(name: str, input_size, failure) -> CnnzooError | None:
    """The user-facing error for an aten op that failed on meta tensors, or None (a bug)."""
    e, func, tensors, layer = failure
    op = str(func).removeprefix("aten.").split(".")[0]
    first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
    real = [t for t in tensors if t.device.type != "meta" and t.ndim > 0]
    if real or op == "_local_scalar_dense" or isinstance(e, NotImplementedError):
        what = (f"mixes a {real[0].device.type} tensor of shape {_shape(real[0])} (made in "
                "forward?) with meta ones" if real else f"needs real data ({op}, e.g. .item() "
                "or a data-dependent shape)")
        return MetaUnsupported(f"{name}: layer {layer} {what}; the analysis runs the model on "
                               f"meta tensors, which have shapes but no data: {first_line}")
    if isinstance(e, (RuntimeError, ValueError, IndexError)):
        shapes = ", ".join(_shape(t) for t in tensors[:3])
        return ShapeError(f"{name} cannot take input {'x'.join(map(str, input_size))} (at layer "
                          f"{layer}: {op} of {shapes}): {first_line}")
    return None


def _trace(net: nn.Module, x: torch.Tensor, name: str, capture=()) -> _Tracer:
    """Run net(x) on meta tensors under the tracer, with forward hooks naming the rows.

    For each module name in `capture`, tracer.captured[name] = (output shape, its RF)."""
    input_size = tuple(x.shape[1:])
    tracer = _Tracer(name)
    inp = Layer("input", "Input", output_shape=input_size, activations=math.prod(input_size),
                activation_bytes=math.prod(input_size) * x.element_size())
    tracer.rows.append(inp)
    tracer.rf[x] = RF()
    tracer.owner[_storage_key(x)] = inp
    counted: set[int] = set()
    handles = []

    def pre(mod, _args, mname=None):
        row = None
        if not any(True for _ in mod.children()):
            ps = [p for p in mod.parameters() if id(p) not in counted]
            counted.update(id(p) for p in ps)
            row = Layer(mname or "<root>", type(mod).__name__, params=sum(p.numel() for p in ps))
            tracer.rows.append(row)
        tracer.stack.append((mname, row))

    def post(mod, _args, out, mname=None):
        _, row = tracer.stack.pop()
        if mname in capture and mname not in tracer.captured:
            t = next(_tensors(out), None)
            if t is not None:
                tracer.captured[mname] = (tuple(t.shape[1:]), tracer.rf.get(t, RF()))
        if row is None:
            return
        first = next(_tensors(out), None)
        if first is None:
            return
        row.output_shape = tuple(first.shape[1:])
        field_ = tracer.rf.get(first, RF())
        row.rf, row.jump = field_.rf, field_.jump
        if tracer.owner.get(_storage_key(first)) is row:
            row.activations = first[0].numel() if first.ndim else 1
            row.activation_bytes = row.activations * first.element_size()

    for mname, mod in net.named_modules():
        handles.append(mod.register_forward_pre_hook(lambda m, a, n=mname: pre(m, a, n)))
        handles.append(mod.register_forward_hook(lambda m, a, o, n=mname: post(m, a, o, n)))
    try:
        with torch.no_grad(), tracer:
            net(x)
    except CnnzooError:
        raise
    except Exception as e:
        # Only an aten op refusing the meta shapes is the input's fault; an exception raised
        # by Python code (a bug in a user's forward) propagates unchanged.
        err = _failure(name, input_size, tracer.failure) if (
            tracer.failure is not None and tracer.failure[0] is e) else None
        if err is None:
            raise
        raise err from e
    finally:
        for h in handles:
            h.remove()
    return tracer


def _saved_bytes(model: nn.Module, x: torch.Tensor) -> tuple[int | None, str]:
    """Bytes per image autograd saves for backward in a training-mode forward (no params),
    or (None, why the training-mode forward fails).

    Runs at batch 2 (train-mode BatchNorm needs more than one value per channel) and halves.
    """
    # Not x.expand(2, ...): its storage holds one image, and the first layer saves its input.
    x = torch.empty((2, *x.shape[1:]), device=x.device, dtype=x.dtype)
    params = {_storage_key(p) for p in model.parameters()}
    saved: dict[int, int] = {}
    keep = []

    def pack(t):
        key = _storage_key(t)
        if key not in params:
            saved[key] = t.untyped_storage().nbytes()
            keep.append(t)
        return t

    was_training = model.training
    try:
        model.train()
        if hasattr(model, "check_input_size"):  # train-mode limits (aux heads), with numbers
            model.check_input_size(tuple(x.shape[1:]))
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(x)
    except Exception as e:  # a model that cannot train at this size still gets its profile
        return None, (str(e).strip().splitlines() or [type(e).__name__])[0]
    finally:
        model.train(was_training)
    return sum(saved.values()) // 2, ""


def _build(name: str, in_chans: int, num_classes: int | None = None, **knobs) -> nn.Module:
    """A registered model built on the meta device (no memory, no real initialisation)."""
    from cnnzoo.models.registry import create_model

    with torch.device("meta"):
        try:
            return create_model(name, num_classes=num_classes, in_chans=in_chans, **knobs)
        except CnnzooError:
            raise
        except (TypeError, ValueError) as e:  # an unknown knob or a value the builder refuses
            raise CnnzooError(f"{name}: {e}") from None


def check_input(model: nn.Module | str, input_size, **knobs) -> None:
    """Raise ShapeError if `model` cannot take inputs of input_size = (C, H, W).

    Runs one forward on a meta copy (no data, no memory): a conv or pool whose window does
    not fit says so with the layer and the numbers, and any other op refusing the shapes (an
    FC layer expecting another flattened size, a wrong channel count) is one ShapeError
    naming the layer. The forward runs in the model's own mode (train mode runs auxiliary
    heads), at batch 2 in train mode so that BatchNorm sees more than one value. A model
    whose forward needs real data cannot be checked this way: that is a warning, not an
    error. `model` may be a registered name (built on meta, with `knobs`).
    """
    input_size = _size_arg(input_size)
    if isinstance(model, str):
        name, net = model, _build(model, input_size[0], **knobs)
    else:
        name, net = getattr(model, "model_name", type(model).__name__), meta_copy(model)
    dtype = next((t.dtype for t in itertools.chain(net.parameters(), net.buffers())
                  if t.is_floating_point()), torch.float32)
    if hasattr(net, "check_input_size"):  # the stem's own limits, with its numbers
        net.check_input_size(input_size)
    x = torch.empty((2 if net.training else 1, *input_size), device="meta", dtype=dtype)
    try:
        _trace(net, x, name)
    except MetaUnsupported as e:
        warnings.warn(f"input size not checked: {e}", stacklevel=2)


def profile(
    model: nn.Module | str,
    input_size: tuple[int, int, int] | None = None,
    *,
    dtype: str | torch.dtype = "float32",
    num_classes: int | None = None,
    training: bool = True,
    **knobs,
) -> Profile:
    """Profile a registered model (by name, built on meta) or any nn.Module at one input size.

    input_size is (C, H, W); it defaults to the registered model's own, and num_classes to
    the builder's own (1000 for the ImageNet nets, 10 for LeNet-5 and the CIFAR nets).
    A module is profiled on a meta copy; the module itself is not changed.
    training=False skips the training-mode pass that measures autograd's saved activations.
    """
    from cnnzoo.models.registry import model_info

    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise CnnzooError(f"--dtype {dtype!r}: one of {', '.join(DTYPES)}")
        dtype = DTYPES[dtype]
    if isinstance(model, str):
        name = model
        input_size = _size_arg(input_size or model_info(name).input_size)
        net = _build(name, input_size[0], num_classes, **knobs)
    else:
        if input_size is None:
            raise CnnzooError("profile(nn.Module) needs input_size=(C, H, W)")
        input_size = _size_arg(input_size)
        name = getattr(model, "model_name", type(model).__name__)
        net = meta_copy(model)
    net = net.to(dtype).eval()  # our own copy: the caller's module keeps its dtype and mode
    if hasattr(net, "check_input_size"):  # the stem's own limits, with its numbers
        net.check_input_size(input_size)
    x = torch.empty((1, *input_size), device="meta", dtype=dtype)
    tracer = _trace(net, x, name)
    saved, why = _saved_bytes(net, x) if training else (None, "")

    rows = tracer.rows
    params = list({id(p): p for p in net.parameters()}.values())
    n_params = sum(p.numel() for p in params)
    notes = []
    unprofiled = n_params - sum(r.params for r in rows)
    if unprofiled:
        notes.append(f"{unprofiled:,} params are not in any layer run by this forward "
                     "(e.g. auxiliary heads, which run only in training mode)")
    if training and saved is None:
        notes.append(f"the training-mode forward fails at this size ({why}); the "
                     "training-memory estimate uses the forward activations as the saved ones")
    if tracer.floored:
        n, more = len(tracer.floored), len(tracer.floored) - 3
        notes.append(("1 layer's stride does not tile its input" if n == 1 else
                      f"{n} layers' strides do not tile their input")
                     + "; PyTorch floors the size (drops border pixels): "
                     + "; ".join(tracer.floored[:3]) + (f"; and {more} more" if more > 0 else ""))
    if any(r.rf == "n/a" for r in rows):
        notes.append("RF n/a: the receptive field is tracked over H x W grids only; it is not "
                     "for layers after a 1-D conv / interpolation or a grid_sample / unfold")
    return Profile(
        model=name,
        input_size=input_size,
        dtype=str(dtype).replace("torch.", ""),
        layers=rows,
        params=n_params,
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        param_bytes=sum(p.numel() * p.element_size() for p in params),
        macs=sum(r.macs for r in rows),
        activations=sum(r.activations for r in rows),
        activation_bytes=sum(r.activation_bytes for r in rows),
        saved_bytes=saved,
        notes=notes,
    )
