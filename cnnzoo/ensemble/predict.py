"""Every member's scores on every image, with test-time views made a chunk at a time.

`member_scores(models, loader, tta, average, view_chunk)` -> scores [M, N, K]: each member's
softmax averaged over the views ("prob"), or its logits averaged over them ("logit"). The
views of a batch are made `view_chunk` at a time (`tta_views(..., views=...)`), so 10-crop
holds chunk x batch images, not 10 x batch; the result does not depend on the chunk.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnzoo.ensemble.metrics import AVERAGES
from cnnzoo.evaluate.evaluate import make_views, view_count
from cnnzoo.models.layers import main_logits


@torch.no_grad()
def member_scores(models, loader, tta: str = "none", average: str = "prob",
                  view_chunk: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores [M, N, K] on the CPU, labels [N]) of `models` (each taking 0..1 images,
    e.g. `Normalized`) over `loader`'s (x 0..1 [B,C,H,W], y) batches (module doc)."""
    if average not in AVERAGES:
        raise ValueError(f"--average must be one of {', '.join(AVERAGES)}, got {average!r}")
    if view_chunk < 1:
        raise ValueError(f"view_chunk must be >= 1, got {view_chunk}")
    models = [models] if isinstance(models, nn.Module) else list(models)
    v = view_count(tta)
    out, labels = [], []
    for x, y in loader:
        b = x.shape[0]
        acc = [0.0] * len(models)
        for start in range(0, v, view_chunk):
            views, n = make_views(x, tta, range(start, min(v, start + view_chunk)))
            for j, m in enumerate(models):
                s = main_logits(m(views)).float().view(n, b, -1)
                acc[j] = acc[j] + (F.softmax(s, -1) if average == "prob" else s).sum(0)
        out.append(torch.stack([a / v for a in acc]).cpu())
        labels.append(torch.as_tensor(y).cpu())
    return torch.cat(out, 1), torch.cat(labels)
