"""`cnnzoo report`: one self-contained HTML page per run, or several runs side by side."""

from __future__ import annotations

import os
from pathlib import Path

from cnnzoo.utils.io import atomic_write_text


def report_html(run_dirs, *, which: str = "best", device="cpu") -> str:
    """The page of one run, or the comparison page of several (each read once, no training)."""
    from cnnzoo import runs
    from cnnzoo.report import run as rundata
    from cnnzoo.report.compare import compare_page, run_names
    from cnnzoo.report.html import run_page

    dirs = runs.run_dirs(run_dirs)  # a folder of runs (seeds of one ensemble) gives each
    for d in dirs:  # every folder checked before any work
        runs.read_config(d)
        runs.weights_path(d, which)
    loaded = [rundata.load(d, which=which, device=device, name=n)
              for d, n in zip(dirs, run_names(dirs))]
    return run_page(loaded[0]) if len(loaded) == 1 else compare_page(loaded)


def build_report(run_dirs, out: str | os.PathLike, **kw) -> Path:
    """Write `report_html(run_dirs)` to `out` atomically and return its path."""
    text = report_html(run_dirs, **kw)
    atomic_write_text(out, text)
    return Path(out)


__all__ = ["build_report", "report_html"]
