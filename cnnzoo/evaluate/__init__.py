"""Test-split evaluation (top-1/top-5, per class, confusion, TTA) and prediction on files."""

from cnnzoo.evaluate.evaluate import Normalized, evaluate_run, make_views, predict_proba
from cnnzoo.evaluate.metrics import confusion_matrix, per_class_accuracy, topk_accuracy
from cnnzoo.evaluate.predict import load_image, predict_images

__all__ = [
    "Normalized",
    "confusion_matrix",
    "evaluate_run",
    "load_image",
    "make_views",
    "per_class_accuracy",
    "predict_images",
    "predict_proba",
    "topk_accuracy",
]
