"""What every case study shares: the claim it tests, the rule that gives the verdict, the
machine it ran on, and the report (report.md, report.html, results.json, PNGs).

A study is a `Study` whose `run(ctx)` measures and returns a `Finding`. The verdict comes from
`Rule`, fixed in the study's code before anything runs; nothing in a report is edited by hand.
"""

from __future__ import annotations

import base64
import html
import math
import os
import platform
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from cnnzoo.errors import CnnzooError
from cnnzoo.utils.io import atomic_write_bytes, atomic_write_json, atomic_write_text

# tiny: seconds, for tests of a report's structure (its numbers mean nothing); small: minutes
# on a 2-core CPU; full: the paper's setting (CIFAR-10, the paper's schedule; for a GPU).
BUDGETS = ("tiny", "small", "full")
CONFIRMED, NOT_CONFIRMED, INCONCLUSIVE = "confirmed", "not confirmed", "inconclusive"


class StudyError(CnnzooError):
    """An unknown study or budget."""


# --- the verdict rule --------------------------------------------------------------------

def spread(values: list[float]) -> float:
    """Half the range over seeds (0 for one seed): what "inside the spread" is measured by."""
    return (max(values) - min(values)) / 2 if len(values) > 1 else 0.0


def mean(values: list[float]) -> float:
    return statistics.fmean(values)


@dataclass(frozen=True)
class Rule:
    """"`a` exceeds `b` by more than `margin`", judged over seeds.

    With d = mean(a) - mean(b) and noise = spread(a) + spread(b):
    confirmed if d > max(margin, noise); not confirmed if d < -noise, or if the noise is small
    but d does not reach the margin; inconclusive when |d| is within the noise. Written down
    before the run, printed in the report as `text`.
    `slack` turns it into "`a` is not below `b` by more than `slack`" (d + slack is judged),
    for claims that something does *not* get worse.
    """

    text: str
    margin: float = 0.0
    slack: float = 0.0

    def judge(self, a: list[float], b: list[float]) -> tuple[str, float, float]:
        d = mean(a) - mean(b) + self.slack
        noise = spread(a) + spread(b)
        if d > max(self.margin, noise):
            return CONFIRMED, d, noise
        if abs(d) <= noise:
            return INCONCLUSIVE, d, noise
        return NOT_CONFIRMED, d, noise


def combine(verdicts: list[str]) -> str:
    """A claim made of parts holds when every part does; fails when any part fails."""
    if any(v == NOT_CONFIRMED for v in verdicts):
        return NOT_CONFIRMED
    if all(v == CONFIRMED for v in verdicts):
        return CONFIRMED
    return INCONCLUSIVE


# --- what a study returns ----------------------------------------------------------------

@dataclass
class Finding:
    setting: str                       # what was actually run (markdown)
    measured: list[dict]               # table rows: {"column": value, ...}
    verdict: str                       # CONFIRMED / NOT_CONFIRMED / INCONCLUSIVE
    why: str                           # how the rule read the numbers (markdown)
    caveat: str = ""                   # why it might not hold here (budget, data, scale)
    plots: dict[str, bytes] = field(default_factory=dict)   # file name -> PNG bytes
    data: dict = field(default_factory=dict)                # anything else for results.json


@dataclass
class Context:
    budget: str
    seeds: int
    out: Path
    device: torch.device
    data_dir: str | None = None
    progress: Callable[[str], None] = print


@dataclass(frozen=True)
class Study:
    name: str
    title: str
    claim: str                 # the lecture's words, quoted
    source: str                # which seed (lecture) it comes from
    paper: str                 # the paper's own number, where there is one
    rule: str                  # the verdict rule in words (the code's Rule.text)
    run: Callable[[Context], Finding]
    default_seeds: int = 2


# --- the machine ---------------------------------------------------------------------------

_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "fma", "neon", "asimd")


def machine() -> dict:
    """CPU model, the flags that change PyTorch's speed, cores, torch version, device."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        text = Path("/proc/cpuinfo").read_text()
        m = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        model = m.group(1).strip() if m else model
        m = re.search(r"^(?:flags|Features)\s*:\s*(.+)$", text, re.M)
        flags = set(m.group(1).split()) if m else set()
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    env = {k: os.environ[k] for k in _ENV if k in os.environ}
    return {"cpu": model, "flags": [f for f in _FLAGS if f in flags],
            "cores": torch.get_num_threads(), "torch": torch.__version__, "gpu": gpu,
            "python": platform.python_version(), "env": env}


# Settings that change the speed (not the results): OpenMP threads spinning for work on a
# loaded CPU made 2-thread steps 30x slower here than with OMP_WAIT_POLICY=PASSIVE.
_ENV = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")


def machine_line(m: dict) -> str:
    gpu = f", GPU {m['gpu']}" if m.get("gpu") else ""
    env = "".join(f", {k}={v}" for k, v in (m.get("env") or {}).items())
    return (f"{m['cpu']} ({', '.join(m['flags']) or 'no AVX2'}), {m['cores']} threads, "
            f"torch {m['torch']}{gpu}{env}")


# --- the report ------------------------------------------------------------------------------

def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _md_table(rows: list[dict]) -> str:
    if not rows:
        return ""
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def report_markdown(study: Study, f: Finding, meta: dict) -> str:
    parts = [
        f"# {study.title}",
        f"**Claim** ({study.source}): \"{study.claim}\"",
        f"**The paper's number:** {study.paper or 'none given'}",
        f"**Setting run** (budget `{meta['budget']}`, {meta['seeds']} seed(s)):\n\n{f.setting}",
        f"**Measured** (mean and spread = half the range over seeds):\n\n{_md_table(f.measured)}",
        f"**Verdict: {f.verdict}.** Rule, fixed before the run: {study.rule}\n\n{f.why}",
    ]
    if f.verdict != CONFIRMED and f.caveat:
        parts.append(f"**Why it might not hold here:** {f.caveat}")
    parts += [f"![{name}]({name})" for name in f.plots]
    parts.append(f"---\nCommand: `{meta['command']}`  \nMachine: {machine_line(meta['machine'])}"
                 f"  \nWall time: {meta['wall_time_s']:.1f} s  \nDate: {meta['date']}")
    return "\n\n".join(parts) + "\n"


def _inline_md(text: str) -> str:
    """The little markdown the reports use (bold, code), on escaped text."""
    t = html.escape(text)
    t = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", t)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", t)


def _html_para(p: str) -> str:
    """A paragraph, or a listing when indented by four spaces (markdown's code block)."""
    if p.startswith("    "):
        return f"<pre>{html.escape(chr(10).join(ln[4:] for ln in p.splitlines()))}</pre>"
    return f"<p>{_inline_md(p)}</p>"


CSS = ("body{font:15px/1.5 system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;"
       "color:#222}table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;"
       "padding:.2em .6em;text-align:right}th{background:#f3f3f3}img{max-width:100%}"
       ".v{font-size:1.2em;padding:.3em .6em;border-radius:.3em;display:inline-block}"
       ".confirmed{background:#d8f5d8}.not{background:#f8d8d8}.inconclusive{background:#f3ecc8}"
       "code{background:#f3f3f3;padding:0 .2em}.meta{color:#666;font-size:.9em}")


def _html_table(rows: list[dict]) -> str:
    if not rows:
        return ""
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c, '')))}</td>"
                                    for c in cols) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def report_html(study: Study, f: Finding, meta: dict) -> str:
    """One self-contained page: the PNGs inlined as data URIs, no script, no network."""
    cls = {CONFIRMED: "confirmed", NOT_CONFIRMED: "not"}.get(f.verdict, "inconclusive")
    para = lambda s: "".join(_html_para(p) for p in s.split("\n\n") if p)  # noqa: E731
    imgs = "".join(f'<p><img alt="{html.escape(n)}" src="data:image/png;base64,'
                   f'{base64.b64encode(png).decode()}"></p>' for n, png in f.plots.items())
    caveat = (f"<h2>Why it might not hold here</h2>{para(f.caveat)}"
              if f.verdict != CONFIRMED and f.caveat else "")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(study.title)}"
            f"</title><style>{CSS}</style></head><body><h1>{html.escape(study.title)}</h1>"
            f"<h2>Claim</h2><blockquote>\u201c{html.escape(study.claim)}\u201d "
            f"({html.escape(study.source)})</blockquote>"
            f"<h2>The paper's number</h2>{para(study.paper or 'none given')}"
            f"<h2>Setting run</h2><p>budget <code>{meta['budget']}</code>, {meta['seeds']} "
            f"seed(s)</p>{para(f.setting)}"
            f"<h2>Measured</h2><p>mean and spread (half the range over seeds)</p>"
            f"{_html_table(f.measured)}{imgs}"
            f"<h2>Verdict</h2><p><span class='v {cls}'>{f.verdict}</span></p>"
            f"<p>Rule, fixed before the run: {_inline_md(study.rule)}</p>{para(f.why)}{caveat}"
            f"<p class='meta'>Command: <code>{html.escape(meta['command'])}</code><br>"
            f"Machine: {html.escape(machine_line(meta['machine']))}<br>"
            f"Wall time: {meta['wall_time_s']:.1f} s &middot; {html.escape(meta['date'])}</p>"
            "</body></html>")


def write_report(study: Study, f: Finding, ctx: Context, command: str, wall: float) -> dict:
    meta = {"study": study.name, "budget": ctx.budget, "seeds": ctx.seeds, "command": command,
            "machine": machine(), "wall_time_s": wall,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    ctx.out.mkdir(parents=True, exist_ok=True)
    for name, png in f.plots.items():
        atomic_write_bytes(ctx.out / name, png)
    atomic_write_text(ctx.out / "report.md", report_markdown(study, f, meta))
    atomic_write_text(ctx.out / "report.html", report_html(study, f, meta))
    results = {**meta, "claim": study.claim, "source": study.source, "paper": study.paper,
               "rule": study.rule, "verdict": f.verdict, "why": f.why, "setting": f.setting,
               "measured": f.measured, "caveat": f.caveat, "data": f.data,
               "plots": list(f.plots)}
    atomic_write_json(ctx.out / "results.json", _finite(results))
    return results


def write_index(out: Path, results: list[dict]) -> Path:
    """index.md and index.html: one line per study with its verdict and wall time."""
    rows = [{"study": r["study"], "verdict": r["verdict"], "wall time (s)": r["wall_time_s"],
             "claim": r["claim"][:90] + ("..." if len(r["claim"]) > 90 else "")}
            for r in results]
    md = ["# Case studies, rerun", "", _md_table(rows), ""]
    md += [f"- [{r['study']}]({r['study']}/report.md)" for r in results]
    atomic_write_text(out / "index.md", "\n".join(md) + "\n")
    links = "".join(f"<li><a href='{html.escape(r['study'])}/report.html'>"
                    f"{html.escape(r['study'])}</a>: {html.escape(r['verdict'])}</li>"
                    for r in results)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>Case studies</title>"
            f"<style>{CSS}</style></head><body><h1>Case studies, rerun</h1>"
            f"{_html_table(rows)}<ul>{links}</ul></body></html>")
    atomic_write_text(out / "index.html", page)
    return out / "index.html"


def _finite(obj):
    """Strict JSON: NaN/inf become null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def png_bytes(fig) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def as_dict(study: Study) -> dict:
    d = asdict(study)
    d.pop("run")
    return d
