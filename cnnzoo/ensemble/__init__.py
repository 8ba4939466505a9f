"""Ensembles and multi-view testing (cnnzoo ensemble): members' and the average's accuracy,
calibration, oracle accuracy, disagreement and the gain curve, with chunked test-time views.
"""

from cnnzoo.ensemble.evaluate import evaluate_ensemble, summarize
from cnnzoo.ensemble.metrics import (
    combine,
    disagreement,
    expected_calibration_error,
    gain_curve,
    oracle_accuracy,
)
from cnnzoo.ensemble.predict import member_scores

__all__ = ["combine", "disagreement", "evaluate_ensemble", "expected_calibration_error",
           "gain_curve", "member_scores", "oracle_accuracy", "summarize"]
