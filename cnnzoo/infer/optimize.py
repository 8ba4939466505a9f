"""The inference path: the same outputs as `model.eval()`, faster.

    fast = cnnzoo.optimize_for_inference(model, input_size=(3, 32, 32), batch_size=64)
    logits = fast(x)                 # x NCHW as always; fast.info says what was done

On a deep copy (the model given is never changed):
1. Batch norm folded into the convolution before it, wherever that is exact: the BN's input
   is that convolution's output and nothing else reads that output. Which pairs qualify is
   proved on one forward (on meta tensors: no data, no memory) that records, per aten op,
   the tensors it reads and makes, and which module ran it. No torch.fx tracing, so random
   control flow is no obstacle; the model must take the same path on every eval-mode call
   (every zoo model does). A BN that sits before its convolution with an activation between
   (pre-activation ResNets, DenseNet: BN -> ReLU -> conv) cannot be folded; the report says
   which and why.
2. Channels-last memory format where it measures faster for this network on this device
   (NCHW and channels-last timed in interleaved rounds; grouped convolutions, e.g. ResNeXt,
   can lose in channels-last, so the choice is per model).
3. Inference mode (no autograd bookkeeping at all).
4. Optionally `torch.compile` with Inductor's freezing: weights become constants, so it
   folds what is left, pre-packs convolution weights for oneDNN (mkldnn) and fuses
   convolution + activation; the first call compiles (tens of seconds).
"""

from __future__ import annotations

import copy
from collections import defaultdict
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torch.utils._python_dispatch import TorchDispatchMode

from cnnzoo.analysis.profile import _storage_key, _tensors, meta_copy
from cnnzoo.errors import CnnzooError

# Elementwise activations: a BN whose output goes through one of these into a convolution is
# a pre-activation BN (BN -> act -> conv), which no folding can absorb.
_ACTIVATIONS = {"relu", "relu_", "threshold", "threshold_", "hardtanh", "hardtanh_", "elu",
                "elu_", "leaky_relu", "leaky_relu_", "gelu", "silu", "silu_", "sigmoid",
                "tanh", "clamp", "clamp_", "clamp_min", "clamp_min_", "mish", "hardswish"}
PREACTIVATION = ("sits before its convolution with an activation between (BN -> act -> "
                 "conv, pre-activation): cannot be folded")


@dataclass
class FoldReport:
    """Which batch norms were folded into which convolutions, and why the others were not."""

    folded: list[tuple[str, str]] = field(default_factory=list)  # (conv, bn)
    not_folded: list[tuple[str, str]] = field(default_factory=list)  # (bn, why)

    @property
    def preactivation(self) -> list[str]:
        return [bn for bn, why in self.not_folded if why == PREACTIVATION]

    def summary(self) -> str:
        total = len(self.folded) + len(self.not_folded)
        if not total:
            return "no batch norm to fold"
        line = f"folded {len(self.folded)} of {total} batch norms into their convolutions"
        pre = self.preactivation
        if pre:
            line += (f"; {len(pre)} sit before their convolution with an activation between "
                     f"(pre-activation BN -> ReLU -> conv, e.g. {pre[0]}): they cannot be "
                     "folded")
        other = [(bn, why) for bn, why in self.not_folded if why != PREACTIVATION]
        if other:
            line += f"; {len(other)} not folded: " + "; ".join(
                f"{bn} {why}" for bn, why in other[:3]) + ("; ..." if len(other) > 3 else "")
        return line


@dataclass
class InferenceInfo:
    """What `optimize_for_inference` did, for reports and `cnnzoo bench`."""

    fold: FoldReport | None
    channels_last: bool
    layout: str  # why that memory format: "asked" or the measured times
    compiled: bool

    def summary(self) -> str:
        return "\n".join([
            f"batch norm: {self.fold.summary() if self.fold else 'not folded (fold_bn=False)'}",
            f"memory format: {'channels-last' if self.channels_last else 'NCHW'} ({self.layout})",
            f"torch.compile: {'on (Inductor, freezing)' if self.compiled else 'off'}",
        ])


class InferenceModel(nn.Module):
    """The optimised copy: takes the usual NCHW input, runs in inference mode."""

    def __init__(self, model: nn.Module, info: InferenceInfo):
        super().__init__()
        self.model = model
        self.info = info
        for attr in ("model_name", "default_input_size", "num_classes"):
            if hasattr(model, attr):
                setattr(self, attr, getattr(model, attr))

    def train(self, mode: bool = True):
        return super().train(False)  # an inference copy: dropout, BN updates stay off

    def forward(self, x: torch.Tensor):
        with torch.inference_mode():
            if self.info.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            return self.model(x)


def max_rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b|: the difference relative to the output's scale (elementwise
    ratios would blow up at logits near zero)."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


# --- which conv -> BN pairs fold exactly -----------------------------------------------------

class _Flow(TorchDispatchMode):
    """Per aten op: its name, the innermost module running it, the storages it reads and
    makes. Every tensor is kept alive so that no storage key is reused within the forward."""

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.readers: dict[int, list[tuple[str, str]]] = defaultdict(list)  # (op, module)
        self.maker: dict[int, tuple[str, str]] = {}
        self.made_from: dict[int, set[int]] = {}
        self.keep: list[torch.Tensor] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        op = func.overloadpacket.__name__
        where = self.stack[-1] if self.stack else ""
        ins = [t for t in _tensors((args, kwargs))]
        in_keys = {_storage_key(t) for t in ins}
        for k in in_keys:
            self.readers[k].append((op, where))
        for t in _tensors(out):
            k = _storage_key(t)
            if k not in in_keys:  # a view or an in-place op keeps its first maker
                self.maker[k] = (op, where)
                self.made_from[k] = in_keys
            self.keep.append(t)
        self.keep.extend(ins)
        return out


def _is_conv(m: nn.Module) -> bool:
    return isinstance(m, nn.Conv2d) and type(m).forward is nn.Conv2d.forward


def _is_bn(m: nn.Module) -> bool:
    return isinstance(m, _BatchNorm) and type(m).forward is _BatchNorm.forward


def _record(net: nn.Module, x: torch.Tensor):
    """Run net(x) under _Flow with hooks: per conv/BN name its calls, inputs and outputs."""
    flow = _Flow()
    calls: dict[str, list] = defaultdict(list)  # name -> [(input, output)] per call
    watched = {n for n, m in net.named_modules() if _is_conv(m) or _is_bn(m)}
    handles = []

    def pre(_m, _args, name):
        flow.stack.append(name)

    def post(_m, args, out, name):
        flow.stack.pop()
        if name in watched:
            calls[name].append((args[0] if len(args) == 1 else None, out))

    for name, m in net.named_modules():
        handles.append(m.register_forward_pre_hook(lambda m, a, n=name: pre(m, a, n)))
        handles.append(m.register_forward_hook(lambda m, a, o, n=name: post(m, a, o, n)))
    try:
        with torch.no_grad(), flow:
            out = net(x)
    finally:
        for h in handles:
            h.remove()
    return flow, calls, {_storage_key(t) for t in _tensors(out)}


def _feeds_conv_through_activation(flow: _Flow, key: int) -> bool:
    """Whether the tensor `key` goes through an activation into a convolution."""
    acts = {op for op, _ in flow.readers.get(key, ()) if op in _ACTIVATIONS}
    if not acts:
        return False
    outs = {key} | {k for k, src in flow.made_from.items() if key in src
                    and flow.maker[k][0] in _ACTIVATIONS}  # in place: the same storage
    return any(op == "convolution" for k in outs for op, _ in flow.readers.get(k, ()))


def plan_fold(model: nn.Module, input_size) -> FoldReport:
    """The conv -> BN pairs of `model` (eval mode) whose folding is exact, and the BNs that
    cannot be folded with the reason. `model` is not changed (the forward runs on a meta copy,
    or on a copy with real tensors if the forward needs data)."""
    modules = dict(model.named_modules())
    bns = [n for n, m in modules.items() if _is_bn(m)]
    report = FoldReport()
    if not bns:
        return report
    param_owners: dict[int, int] = defaultdict(int)
    for _, m in model.named_modules(remove_duplicate=False):
        for p in m.parameters(recurse=False):
            param_owners[id(p)] += 1
    try:
        net = meta_copy(model).eval()
        dtype = next((p.dtype for p in net.parameters() if p.is_floating_point()),
                     torch.float32)
        flow, calls, out_keys = _record(net, torch.empty(1, *input_size, device="meta",
                                                         dtype=dtype))
    except Exception:  # a forward that needs data (.item()): one real batch-1 pass on a copy
        net = copy.deepcopy(model).eval()
        p = next(net.parameters())
        try:
            flow, calls, out_keys = _record(net, torch.zeros(1, *input_size, device=p.device,
                                                             dtype=p.dtype))
        except Exception as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            name = getattr(model, "model_name", type(model).__name__)
            raise CnnzooError(f"{name} cannot run on input {'x'.join(map(str, input_size))}: "
                              f"{first[:300]}") from e
    conv_of_output = {}  # storage key of a conv's output -> conv name
    for name, rec in calls.items():
        if _is_conv(modules[name]) and len(rec) == 1:
            conv_of_output[_storage_key(rec[0][1])] = name

    for bn in bns:
        m = modules[bn]
        rec = calls.get(bn, [])
        if not m.track_running_stats or m.running_mean is None:
            report.not_folded.append((bn, "normalises with batch statistics in eval mode "
                                      "(track_running_stats=False)"))
            continue
        if len(rec) != 1 or rec[0][0] is None:
            report.not_folded.append((bn, "does not run in eval mode (an auxiliary head?)"
                                      if not rec else
                                      f"runs {len(rec)} times per forward"))
            continue
        inp, out = rec[0]
        key = _storage_key(inp)
        conv = conv_of_output.get(key)
        maker_op, maker = flow.maker.get(key, ("the input", ""))
        if conv is None and maker in calls and _is_conv(modules[maker]):
            report.not_folded.append((bn, f"follows {maker}, which runs {len(calls[maker])} "
                                      "times per forward"))
            continue
        if conv is None:
            if _feeds_conv_through_activation(flow, _storage_key(out)):
                report.not_folded.append((bn, PREACTIVATION))
            else:
                report.not_folded.append((bn, f"takes the output of {maker_op} in "
                                          f"{maker or 'the top-level forward'}, not of a "
                                          "convolution"))
            continue
        conv_out = calls[conv][0][1]
        others = [(op, w) for op, w in flow.readers[key] if w != bn]
        if others or key in out_keys:
            op, where = others[0] if others else ("the model's output", "")
            report.not_folded.append((bn, f"shares its input with {op} in {where or 'the model'}"
                                      f" ({conv}'s output is used elsewhere)"))
        elif inp.shape != conv_out.shape or inp.stride() != conv_out.stride():
            report.not_folded.append((bn, f"takes a view of {conv}'s output"))
        elif any(param_owners[id(p)] > 1 for p in modules[conv].parameters()):
            report.not_folded.append((bn, f"follows {conv}, whose weights are shared"))
        else:
            report.folded.append((conv, bn))
    return report


def fold_batchnorm(model: nn.Module, input_size) -> tuple[nn.Module, FoldReport]:
    """An eval-mode deep copy of `model` with every exactly foldable BN folded into its
    convolution (the BN becomes nn.Identity), and the report."""
    report = plan_fold(model, input_size)
    net = copy.deepcopy(model).eval()
    for conv, bn in report.folded:
        c, b = net.get_submodule(conv), net.get_submodule(bn)
        dtype = c.weight.dtype
        # In float64, then rounded once: float32 folding rounds twice per weight (the scale,
        # then the product), which deep plain nets amplify into visible differences.
        fused = fuse_conv_bn_eval(copy.deepcopy(c).double(), copy.deepcopy(b).double())
        net.set_submodule(conv, fused.to(dtype))
        net.set_submodule(bn, nn.Identity())
    return net, report


# --- the path ----------------------------------------------------------------------------------

def _faster_in_channels_last(net: nn.Module, x: torch.Tensor) -> tuple[bool, str]:
    from cnnzoo.utils.timing import interleaved

    cl = copy.deepcopy(net).to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        t = interleaved({"nchw": lambda: net(x), "cl": lambda: cl(x_cl)}, rounds=3,
                        min_time=0.05, warmup=1, device=x.device)
    nchw, nhwc = t["nchw"].median, t["cl"].median
    return nhwc < nchw, (f"measured at batch {len(x)}: NCHW {1e3 * nchw:.2f} ms, "
                         f"channels-last {1e3 * nhwc:.2f} ms")


def _input_size(model: nn.Module, input_size) -> tuple[int, int, int]:
    size = input_size or getattr(model, "default_input_size", None)
    if size is None:
        raise CnnzooError(f"optimize_for_inference: {type(model).__name__} has no "
                          "default_input_size; pass input_size=(C, H, W)")
    size = tuple(int(v) for v in size)
    if len(size) != 3 or min(size) < 1:
        raise CnnzooError(f"optimize_for_inference: input_size {size} is not (C, H, W)")
    return size


def optimize_for_inference(model: nn.Module, *, fold_bn: bool = True,
                           channels_last: bool | None = None, compile: bool = False,
                           input_size=None, batch_size: int = 8) -> InferenceModel:
    """An optimised deep copy of `model` with the outputs of `model.eval()` (max relative
    difference below 1e-4) for the same NCHW input. See the module docstring.

    channels_last: True / False forces the memory format; None measures both on
    `batch_size` random inputs of `input_size` (default: the model's `default_input_size`)
    and keeps the faster. compile: torch.compile with Inductor freezing (first call slow).
    """
    size = _input_size(model, input_size)
    if fold_bn:
        net, report = fold_batchnorm(model, size)
    else:
        net, report = copy.deepcopy(model).eval(), None
    layout = "asked"
    if channels_last is None:
        p = next(net.parameters(), None)
        x = torch.randn(batch_size, *size, device=p.device if p is not None else "cpu",
                        dtype=p.dtype if p is not None else torch.float32)
        channels_last, layout = _faster_in_channels_last(net, x)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    if compile:
        # freezing: parameters become constants, which lets Inductor fold them and pre-pack
        # convolution weights for oneDNN (CPU) or pick cuDNN layouts once (GPU).
        net = torch.compile(net, options={"freezing": True})
    return InferenceModel(net, InferenceInfo(report, bool(channels_last), layout, compile))
