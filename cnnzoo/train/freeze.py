"""Freezing part of a network and giving the rest its own learning rates (transfer learning).

    freeze(model, "layer2")              # conv1 ... layer2 stop learning, layer3 on still do
    freeze(model)                        # everything but the classifier (a linear probe)
    groups = param_groups(model, body_lr_mult=0.1)   # body at lr/10, the head at lr
    train(cfg, model=model, param_groups=groups)

A frozen parameter has requires_grad=False and the trainer gives it to no optimizer. A
BatchNorm layer whose parameters are all frozen is frozen too: `frozen_bn_eval` keeps it in
eval mode across `model.train()` (the trainer calls it every time it enters train mode), so
it normalises with its stored statistics and never updates them. A BatchNorm without affine
parameters has nothing to freeze and follows the model's mode.
"""

from __future__ import annotations

import difflib

import torch.nn as nn

from cnnzoo.errors import CnnzooError


def _head(model: nn.Module) -> list[nn.Parameter] | None:
    """Parameters of `model.get_classifier()` and of the auxiliary classifiers' final layers
    (`reset_classifier` renews those too); None when the model has no get_classifier."""
    get = getattr(model, "get_classifier", None)
    if not callable(get):
        return None
    aux = getattr(model, "aux_classifier_names", ())
    layers = [get()] + [model.get_submodule(n) for n in aux]
    return [p for m in layers for p in m.parameters()]


def freeze(model: nn.Module, up_to: str | None = None) -> list[str]:
    """Freeze the module named `up_to` and every module before it in `named_modules()` order
    (for a container before it, only the parameters it holds itself); None freezes the whole
    model except `model.get_classifier()` and the auxiliary classifiers' final layers (all
    of it when the model has no get_classifier).
    Returns the names of the parameters frozen."""
    modules = dict(model.named_modules())
    if up_to is not None and (not up_to or up_to not in modules):
        close = difflib.get_close_matches(up_to, [n for n in modules if n], n=5, cutoff=0.4)
        top = [n for n, _ in model.named_children()][:8]
        hint = f"closest: {', '.join(close)}" if close else f"its modules: {', '.join(top)}"
        name = getattr(model, "model_name", type(model).__name__)
        raise CnnzooError(f"freeze: {name} has no module {up_to!r} ({hint})")
    if up_to is None:
        keep = {id(p) for p in _head(model) or ()}
        chosen = [(n, p) for n, p in model.named_parameters() if id(p) not in keep]
    else:
        chosen = []
        for name, m in modules.items():
            if name == up_to:
                chosen += [(f"{name}.{n}", p) for n, p in m.named_parameters()]
                break
            chosen += [(f"{name}.{n}" if name else n, p)
                       for n, p in m.named_parameters(recurse=False)]
    for _, p in chosen:
        p.requires_grad_(False)
    frozen_bn_eval(model)
    return [n for n, _ in chosen]


def frozen_bn_eval(model: nn.Module) -> int:
    """Put every BatchNorm layer whose parameters are all frozen into eval mode (after
    `model.train()`, which sets them back to train). Returns how many."""
    n = 0
    for m in model.modules():
        params = list(m.parameters(recurse=False))
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and params and not any(
                p.requires_grad for p in params):
            m.eval()
            n += 1
    return n


def param_groups(model: nn.Module, body_lr_mult: float, head_lr_mult: float = 1.0, *,
                 body_weight_decay: float | None = None,
                 head_weight_decay: float | None = None) -> list[dict]:
    """Two optimizer groups: the body at `body_lr_mult` x the run's lr, the head (as in
    `freeze`: the classifier, and aux classifiers' final layers) at `head_lr_mult` x; frozen
    parameters left out, empty groups dropped. A weight decay left None is the run's."""
    head = _head(model)
    if head is None:
        raise CnnzooError(f"param_groups: {type(model).__name__} has no get_classifier(), so "
                          "its head cannot be told from its body")
    in_head = {id(p) for p in head}
    body = [p for p in model.parameters() if p.requires_grad and id(p) not in in_head]
    top = [p for p in head if p.requires_grad]
    groups = []
    for name, params, mult, wd in (("body", body, body_lr_mult, body_weight_decay),
                                   ("head", top, head_lr_mult, head_weight_decay)):
        if params:
            groups.append(dict(params=params, lr_mult=mult, name=name)
                          | ({} if wd is None else {"weight_decay": wd}))
    return groups
