"""Case studies, rerun: each lecture claim as an experiment with a verdict.

    cnnzoo casestudy bottleneck --budget small --out docs/casestudies/bottleneck
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

from cnnzoo.casestudy import (
    bottleneck,
    degradation,
    depth_width_cardinality,
    ensembles_of_paths,
    ensembling,
    initialisation,
    lenet_then_now,
    small_filters,
    stochastic_depth,
    transfer_small_data,
)
from cnnzoo.casestudy.core import BUDGETS, Context, Study, StudyError, write_report
from cnnzoo.utils.device import pick_device

# In the order.
STUDIES: dict[str, Study] = {s.name: s for s in (
    degradation.STUDY, initialisation.STUDY, bottleneck.STUDY, small_filters.STUDY,
    depth_width_cardinality.STUDY, stochastic_depth.STUDY, ensembles_of_paths.STUDY,
    ensembling.STUDY, transfer_small_data.STUDY, lenet_then_now.STUDY,
)}


def get_study(name: str) -> Study:
    if name not in STUDIES:
        raise StudyError(f"unknown study {name!r}; the studies are: {', '.join(STUDIES)}, all")
    return STUDIES[name]


def run_study(name: str, budget: str = "small", seeds: int | None = None, out=None,
              device: str = "auto", data_dir: str | None = None, command: str | None = None,
              progress=print) -> dict:
    """Run one study and write its report folder; returns results.json's content."""
    study = get_study(name)
    if budget not in BUDGETS:
        raise StudyError(f"unknown budget {budget!r}; one of {', '.join(BUDGETS)}")
    if seeds is not None and seeds < 1:
        raise StudyError(f"--seeds must be >= 1, got {seeds}")
    out = Path(out or Path("casestudies") / name)
    ctx = Context(budget=budget, seeds=seeds or study.default_seeds, out=out,
                  device=pick_device(device), data_dir=data_dir, progress=progress)
    command = command or "cnnzoo " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    t0 = time.perf_counter()
    finding = study.run(ctx)
    return write_report(study, finding, ctx, command, time.perf_counter() - t0)


def run_all(out="casestudies", **kw) -> tuple[list[dict], Path]:
    """Every study into out/NAME/, then out/index.html and out/index.md linking them."""
    from cnnzoo.casestudy.core import write_index

    out = Path(out)
    results = [run_study(name, out=out / name, **kw) for name in STUDIES]
    return results, write_index(out, results)


__all__ = ["BUDGETS", "STUDIES", "StudyError", "get_study", "run_all", "run_study"]
