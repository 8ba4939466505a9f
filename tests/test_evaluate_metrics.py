"""Metrics on hand-made logits whose answers are known by inspection."""

import math

import torch

from cnnzoo.evaluate.metrics import confusion_matrix, per_class_accuracy, topk_accuracy

# 4 samples, 6 classes. Ranking of each row (highest first) is written beside it.
LOGITS = torch.tensor([
    [9.0, 1, 2, 3, 4, 5],  # 0 5 4 3 2 1   target 0 -> top-1 hit
    [1.0, 9, 8, 7, 6, 5],  # 1 2 3 4 5 0   target 5 -> top-5 hit (rank 5), top-1 miss
    [6.0, 5, 4, 3, 2, 1],  # 0 1 2 3 4 5   target 5 -> miss even at top-5 (rank 6)
    [1.0, 2, 3, 9, 4, 5],  # 3 5 4 2 1 0   target 4 -> top-3 hit
])
TARGETS = torch.tensor([0, 5, 5, 4])


def test_topk_accuracy_known_answers():
    acc = topk_accuracy(LOGITS, TARGETS, ks=(1, 3, 5))
    assert acc == {1: 0.25, 3: 0.5, 5: 0.75}


def test_topk_same_on_probabilities_and_skips_k_above_classes():
    probs = LOGITS.softmax(1)
    assert topk_accuracy(probs, TARGETS, ks=(1, 5)) == topk_accuracy(LOGITS, TARGETS, ks=(1, 5))
    three = LOGITS[:, :3]  # 3 classes: top-5 is meaningless and left out; argmax 0 1 0 2
    assert topk_accuracy(three, torch.tensor([0, 1, 0, 1]), ks=(1, 5)) == {1: 0.75}


def test_confusion_matrix_rows_true_columns_predicted():
    preds = torch.tensor([0, 1, 1, 2, 2, 2, 0])
    targets = torch.tensor([0, 1, 2, 2, 2, 0, 0])
    cm = confusion_matrix(preds, targets, 4)
    expected = torch.tensor([
        [2, 0, 1, 0],  # class 0: two right, one called 2
        [0, 1, 0, 0],
        [0, 1, 2, 0],  # class 2: one called 1
        [0, 0, 0, 0],  # class 3: never seen
    ])
    assert cm.dtype == torch.int64
    assert torch.equal(cm, expected)
    assert cm.sum() == len(preds)


def test_per_class_accuracy_and_nan_for_absent_class():
    cm = torch.tensor([[2, 0, 1, 0], [0, 1, 0, 0], [0, 1, 2, 0], [0, 0, 0, 0]])
    acc = per_class_accuracy(cm)
    assert acc[:3].tolist() == [2 / 3, 1.0, 2 / 3]
    assert math.isnan(acc[3].item())
