"""Fast inference: batch norm folded, the faster memory format, inference mode, optional
torch.compile (`optimize_for_inference`); see cnnzoo/infer/optimize.py."""

from cnnzoo.infer.optimize import (
    PREACTIVATION,
    FoldReport,
    InferenceInfo,
    InferenceModel,
    fold_batchnorm,
    max_rel_diff,
    optimize_for_inference,
    plan_fold,
)

__all__ = ["PREACTIVATION", "FoldReport", "InferenceInfo", "InferenceModel", "fold_batchnorm",
           "max_rel_diff", "optimize_for_inference", "plan_fold"]
