"""`cnnzoo summary`, `compare`, `conv`: output, exit codes, bad input, the bubble chart."""

import json
import subprocess
import sys

import pytest

from cnnzoo.analysis import profile
from cnnzoo.analysis.compare import compare
from cnnzoo.cli import main


def test_summary_table_and_totals(capsys):
    assert main(["summary", "vgg16", "--batch", "32"]) == 0
    out = capsys.readouterr().out
    assert "138,357,544" in out and "15,470,264,320" in out
    assert "features.0" in out and "3x3 s1 p1" in out and "224" in out
    assert "batch 32" in out and "96MB" in out


def test_summary_json_matches_the_api(capsys):
    assert main(["summary", "lenet5", "--json", "--batch", "4", "--optimizer", "adam"]) == 0
    d = json.loads(capsys.readouterr().out)
    p = profile("lenet5")
    assert d["params"] == p.params and d["macs"] == p.macs
    assert d["training_memory"] == {"batch": 4, "optimizer": "adam",
                                    **p.training_memory(4, "adam")}
    assert [r["rf"] for r in d["layers"]] == [r.rf for r in p.layers]


@pytest.mark.parametrize("argv, words", [
    (["summary", "vgg16", "--input", "3x224"], ["--input", "'3x224'", "CxHxW"]),
    (["summary", "vgg16", "--input", "axbxc"], ["--input", "'axbxc'"]),
    (["summary", "vgg99"], ["unknown model", "vgg19"]),
    (["summary", "vgg16", "--input", "3x16x16"], ["does not fit", "features.30"]),
    (["compare", "vgg16", "nope"], ["unknown model 'nope'"]),
    (["compare", "vgg16", "--input", "3x"], ["--input"]),
    (["conv", "--input", "7", "--kernel", "3", "--stride", "3"],
     ["does not fit", "(7 - 3 + 2*0)/3 + 1 = 2.33"]),
])
def test_bad_input_one_line_exit_2(argv, words, capsys):
    assert main(argv) == 2
    cap = capsys.readouterr()
    err = cap.err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and cap.out == ""
    for w in words:
        assert w in err


def test_no_traceback_from_the_real_command():
    r = subprocess.run([sys.executable, "-m", "cnnzoo", "summary", "alexnet", "--input",
                        "3x32x32"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().startswith("cnnzoo summary: error: alexnet")
    assert "does not fit" in r.stderr


def test_conv_command(capsys):
    assert main(["conv", "--input", "7", "--kernel", "3", "--stride", "2"]) == 0
    assert capsys.readouterr().out.strip().endswith("= 3")
    assert main(["conv", "--input", "7", "--kernel", "3", "--pad", "same"]) == 0
    assert "= 7" in capsys.readouterr().out


def test_compare_table_and_bubble_chart(tmp_path, capsys):
    png = tmp_path / "cmp.png"
    assert main(["compare", "alexnet", "vgg16", "resnet50", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert png.stat().st_size > 1000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in ("alexnet", "vgg16", "resnet50"):
        p = profile(name, training=False)
        line = next(ln for ln in out.splitlines() if ln.startswith(name + " "))
        assert f"{p.params:,}" in line and f"{p.macs:,}" in line
    assert not list(tmp_path.glob(".*.tmp"))


def test_compare_api_numbers_equal_the_summary():
    rows = compare(["vgg16", "resnet18"])
    for r in rows:
        p = profile(r.model)
        assert (r.params, r.macs, r.activation_bytes) == (p.params, p.macs, p.activation_bytes)
        info = __import__("cnnzoo").model_info(r.model)
        if info.top1_err is not None:
            assert r.accuracy == pytest.approx(100 - info.top1_err) and r.accuracy_kind == "top-1"


def test_compare_latency_is_measured():
    (r,) = compare(["lenet5"], latency=True, iters=2)
    assert r.latency_ms is not None and r.latency_ms > 0
