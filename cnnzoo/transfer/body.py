"""The parts of a source network transfer learning cuts it into, in the backbone vocabulary
(cnnzoo.models.backbone): the body's stages, the classifier, the pre-logits feature vector
(what feeds the classifier: FC7, the global-average-pooled map), and any named layer's
output as one vector per image.

A network not yet speaking the vocabulary (a plain nn.Sequential) is read the same way: its
classifier is its last Linear/Conv2d, its stages the top-level children with parameters.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from cnnzoo.models.backbone import Backbone, _new_head, _replace, features, get_layer

PRE_LOGITS = "pre_logits"
POOLS = ("avg", "max", "flatten")


def classifier_name(model: nn.Module) -> str:
    if isinstance(model, Backbone):
        return model.classifier_name
    last = [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    return last[-1]


def stage_names(model: nn.Module) -> list[str]:
    """The body's stages, shallow to deep (the cut points of fine-tuning)."""
    if isinstance(model, Backbone):
        return list(model.stage_names)
    head = classifier_name(model)
    return [n for n, m in model.named_children()
            if n != head and any(True for _ in m.parameters())]


def reset_head(model: nn.Module, num_classes: int) -> None:
    """A new, freshly initialised classifier for `num_classes`; everything else kept."""
    if isinstance(model, Backbone):
        model.reset_classifier(num_classes)
        return
    name = classifier_name(model)
    _replace(model, name, _new_head(model.get_submodule(name), num_classes))
    model.num_classes = num_classes


def _pool(x: torch.Tensor, pool: str) -> torch.Tensor:
    if x.ndim == 4 and pool == "avg":
        return x.mean((2, 3))
    if x.ndim == 4 and pool == "max":
        return x.amax((2, 3))
    return x.flatten(1)


class VectorOf(nn.Module):
    """One feature vector per image from `layer` of `model` ("pre_logits", or any name of
    `named_modules()`; a bad name lists the closest valid ones). Feature maps are pooled
    over space (`pool` "avg" or "max") or flattened ("flatten")."""

    def __init__(self, model: nn.Module, layer: str = PRE_LOGITS, pool: str = "avg"):
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"--pool must be one of {', '.join(POOLS)}, got {pool!r}")
        self.model, self.layer, self.pool = model, layer, pool
        if layer == PRE_LOGITS:
            self.extract = None
            self.head = get_layer(model, classifier_name(model))
        else:
            self.extract = features(model, [layer], detach=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.extract is not None:
            return _pool(self.extract(x)[self.layer], self.pool)
        if isinstance(self.model, Backbone):
            return _pool(self.model.forward_head(self.model.forward_features(x),
                                                 pre_logits=True), self.pool)
        got = []

        def grab(_m, inputs):  # the classifier's input, then stop
            got.append(inputs[0])
            raise _Stop

        h = self.head.register_forward_pre_hook(grab)
        try:
            self.model(x)
        except _Stop:
            pass
        finally:
            h.remove()
        return _pool(got[0], self.pool)


class _Stop(Exception):
    pass
