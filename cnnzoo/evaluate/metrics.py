"""Classification metrics, vectorised in torch: top-k accuracy, confusion matrix, per class.

Top-5 error is the ILSVRC headline number the case studies quote; it is only meaningful when
there are at least 5 classes, so `topk_accuracy` skips k > num_classes.
"""

from __future__ import annotations

import torch


def topk_accuracy(scores: torch.Tensor, targets: torch.Tensor, ks=(1, 5)) -> dict[int, float]:
    """Fraction of rows whose target is among the k highest scores, for each k <= K.

    `scores` [N, K] may be logits or probabilities (only the order matters).
    Ties are broken by torch.topk's order, as in the usual PyTorch evaluation loops.
    """
    n, num_classes = scores.shape
    ks = [k for k in ks if k <= num_classes]
    if not ks or n == 0:
        return {}
    top = scores.topk(max(ks), dim=1).indices  # [N, maxk]
    hit = top == targets.view(-1, 1)
    return {k: hit[:, :k].any(dim=1).float().mean().item() for k in ks}


def confusion_matrix(preds: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """int64 [K, K] counts, rows = true class, columns = predicted class."""
    idx = targets.long() * num_classes + preds.long()
    return torch.bincount(idx, minlength=num_classes * num_classes).view(num_classes, num_classes)


def per_class_accuracy(cm: torch.Tensor) -> torch.Tensor:
    """Recall of each class from a confusion matrix; NaN for a class with no samples."""
    total = cm.sum(dim=1).double()
    correct = cm.diagonal().double()
    return torch.where(total > 0, correct / total.clamp_min(1), torch.nan)
