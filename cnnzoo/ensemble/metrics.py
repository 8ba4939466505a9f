"""What an ensemble's members and their average get right, on scores [M, N, K] of M members
for N images and K classes (softmax probabilities, or logits with average="logit").

- combine: the ensemble's probabilities: the mean of the members' softmax ("prob"), or the
  softmax of their mean logit ("logit");
- oracle accuracy: the fraction of images some member gets right (the ceiling no way of
  combining them can pass);
- disagreement: for each pair of members, the fraction of images their top-1 differs on
  (members that never disagree add nothing to each other);
- expected calibration error (Guo et al. 2017): the top-1 confidences cut into `bins`
  equal-width bins, the gap |accuracy - mean confidence| of each bin weighted by its share
  of the images;
- gain curve: the ensemble's top-1 with the first 1, 2, ... M members, and its mean over
  every subset of that size (the order of the members then does not matter).
"""

from __future__ import annotations

import itertools
import math

import torch

AVERAGES = ("prob", "logit")


def member_probs(scores: torch.Tensor, average: str = "prob") -> torch.Tensor:
    """Each member's probabilities [M, N, K] from its scores (see the module doc)."""
    return scores.softmax(-1) if average == "logit" else scores


def combine(scores: torch.Tensor, average: str = "prob") -> torch.Tensor:
    """The ensemble's probabilities [N, K] from members' scores [M, N, K]."""
    if average not in AVERAGES:
        raise ValueError(f"--average must be one of {', '.join(AVERAGES)}, got {average!r}")
    return scores.mean(0).softmax(-1) if average == "logit" else scores.mean(0)


def oracle_accuracy(preds: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of images at least one member's top-1 `preds` [M, N] gets right."""
    return (preds == labels.view(1, -1)).any(0).float().mean().item()


def disagreement(preds: torch.Tensor) -> torch.Tensor:
    """[M, M]: the fraction of images members i and j give different top-1 classes."""
    return (preds.unsqueeze(1) != preds.unsqueeze(0)).float().mean(-1)


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor,
                               bins: int = 15) -> float:
    """ECE of probabilities [N, K] (module doc); confidence 1.0 falls in the last bin."""
    conf, pred = probs.max(1)
    right = (pred == labels).double()
    idx = (conf.double() * bins).floor().long().clamp_(0, bins - 1)
    n = torch.bincount(idx, minlength=bins).double()
    acc = torch.bincount(idx, weights=right, minlength=bins)
    cf = torch.bincount(idx, weights=conf.double(), minlength=bins)
    keep = n > 0
    gap = (acc[keep] / n[keep] - cf[keep] / n[keep]).abs()
    return (gap * n[keep]).sum().item() / max(len(labels), 1)


def top1(probs: torch.Tensor, labels: torch.Tensor) -> float:
    return (probs.argmax(-1) == labels).float().mean().item()


def gain_curve(scores: torch.Tensor, labels: torch.Tensor, average: str = "prob",
               max_subsets: int = 200, seed: int = 0) -> list[dict]:
    """For k = 1..M: the top-1 of the first k members' ensemble, and the mean (and min, max)
    over subsets of k members (all of them, or `max_subsets` drawn at random)."""
    m = scores.shape[0]
    g = torch.Generator().manual_seed(seed)
    out = []
    for k in range(1, m + 1):
        n_sub = math.comb(m, k)
        if n_sub <= max_subsets:
            subsets = list(itertools.combinations(range(m), k))
        else:
            subsets = [tuple(torch.randperm(m, generator=g)[:k].sort().values.tolist())
                       for _ in range(max_subsets)]
        accs = [top1(combine(scores[list(s)], average), labels) for s in subsets]
        out.append({"members": k, "first": top1(combine(scores[:k], average), labels),
                    "mean": sum(accs) / len(accs), "min": min(accs), "max": max(accs),
                    "subsets": len(subsets)})
    return out
