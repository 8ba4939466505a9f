"""Case studies: the verdict rule, the report's structure at a tiny budget, bad input."""

from __future__ import annotations

import json

import pytest

from cnnzoo.casestudy import STUDIES, StudyError, run_study
from cnnzoo.casestudy.core import CONFIRMED, INCONCLUSIVE, NOT_CONFIRMED, Rule, combine
from cnnzoo.cli import main


def test_rule_reads_the_spread():
    r = Rule("a > b", margin=0.01)
    assert r.judge([0.9, 0.92], [0.5, 0.52])[0] == CONFIRMED
    assert r.judge([0.5, 0.52], [0.9, 0.92])[0] == NOT_CONFIRMED
    assert r.judge([0.5, 0.7], [0.55, 0.6])[0] == INCONCLUSIVE  # inside the spread
    # one seed: no spread, so a difference below the margin is "not confirmed"
    assert r.judge([0.505], [0.5])[0] == NOT_CONFIRMED
    assert combine([CONFIRMED, INCONCLUSIVE]) == INCONCLUSIVE
    assert combine([CONFIRMED, NOT_CONFIRMED]) == NOT_CONFIRMED
    assert combine([CONFIRMED, CONFIRMED]) == CONFIRMED


SECTIONS = ["**Claim**", "**The paper's number:**", "**Setting run**", "**Measured**",
            "**Verdict:"]


@pytest.mark.parametrize("name", list(STUDIES))
def test_report_structure_at_tiny_budget(name, tmp_path):
    r = run_study(name, budget="tiny", seeds=1, out=tmp_path / name, command="test")
    md = (tmp_path / name / "report.md").read_text()
    pos = [md.index(s) for s in SECTIONS]
    assert pos == sorted(pos), "sections in the issue's order"
    assert r["verdict"] in (CONFIRMED, NOT_CONFIRMED, INCONCLUSIVE)
    res = json.loads((tmp_path / name / "results.json").read_text())
    assert res["machine"]["cpu"] and res["machine"]["torch"] and res["wall_time_s"] > 0
    assert res["measured"] and all(isinstance(row, dict) for row in res["measured"])
    html = (tmp_path / name / "report.html").read_text()
    assert "http://" not in html and "https://" not in html, "self-contained"
    for plot in res["plots"]:
        assert (tmp_path / name / plot).read_bytes()[:4] == b"\x89PNG"
        assert f"({plot})" in md
    if res["verdict"] != CONFIRMED:
        assert "**Why it might not hold here:**" in md


def test_bottleneck_counts_are_the_seeds(tmp_path):
    r = run_study("bottleneck", budget="tiny", out=tmp_path / "b", command="test")
    per_pos = {row["layer"]: row["MACs / position"] for row in r["measured"]}
    assert per_pos["3x3 conv, 256 -> 256"] == 256 * 256 * 9
    assert per_pos["1x1 64 / 3x3 64 / 1x1 256"] == 256 * 64 + 64 * 64 * 9 + 64 * 256


def test_bad_input_is_one_line(tmp_path, capsys):
    assert main(["casestudy", "nosuch", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown study 'nosuch'" in err[0] and "bottleneck" in err[0]
    assert main(["casestudy", "bottleneck", "--budget", "huge", "--out", str(tmp_path / "y")]) \
        == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown budget 'huge'" in err[0]
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    with pytest.raises(StudyError):
        run_study("bottleneck", budget="full", seeds=0, out=tmp_path / "z")
