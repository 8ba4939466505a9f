"""`cnnzoo summary`, `compare`, `conv`: output, exit codes, bad input, the bubble chart."""

import json
import math
import subprocess
import sys

import pytest

import cnnzoo
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


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_summary_dtype_changes_the_bytes_not_the_macs(dtype, capsys):
    runs = {}
    for d in ("float32", dtype):
        assert main(["summary", "resnet18", "--json", "--dtype", d, "--batch", "8"]) == 0
        runs[d] = json.loads(capsys.readouterr().out)
    full, half = runs["float32"], runs[dtype]
    assert half["dtype"] == dtype and half["macs"] == full["macs"]
    assert half["param_bytes"] == 2 * half["params"] == full["param_bytes"] // 2
    assert 2 * half["activation_bytes"] == full["activation_bytes"]
    assert [2 * r["activation_bytes"] for r in half["layers"]] == [
        r["activation_bytes"] for r in full["layers"]]
    assert half["training_memory"]["total"] < 0.6 * full["training_memory"]["total"]


@pytest.mark.parametrize("argv, words", [
    (["summary", "vgg16", "--input", "3x224"], ["--input", "'3x224'", "CxHxW"]),
    (["summary", "vgg16", "--input", "axbxc"], ["--input", "'axbxc'"]),
    (["summary", "vgg99"], ["unknown model", "vgg19"]),
    (["summary", "vgg16", "--input", "3x16x16"], ["does not fit", "features.30",
                                                   "try --small-input"]),
    (["summary", "vgg16", "--input", "3x20000000x2"], ["does not fit", "features.9",
                                                      "on a 10000000x1 input: along W"]),
    (["summary", "inception_v3", "--input", "3x64x64"], ["small_input=True",
                                                     "on the command line: --small-input"]),
    (["summary", "vgg16", "--knob", "nope=1"], ["vgg16 does not take nope"]),
    (["summary", "lenet5", "--small-input"], ["lenet5 does not take small_input"]),
    (["compare", "vgg16", "resnet18", "--knob", "groups=2"], ["vgg16 does not take groups"]),
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


def test_compare_json_parses_and_the_chart_note_goes_to_stderr(tmp_path, capsys):
    assert main(["compare", "resnet18", "lenet5", "--json", "--plot",
                 str(tmp_path / "c.png")]) == 0
    cap = capsys.readouterr()
    rows = json.loads(cap.out)
    assert [(r["model"], r["params"], r["macs"]) for r in rows] == [
        (n, profile(n).params, profile(n).macs) for n in ("resnet18", "lenet5")]
    assert rows[0]["top1_acc"] == cnnzoo.model_info("resnet18").ref_top1_acc
    assert "1 of 2 models plotted" in cap.err


def test_compare_api_numbers_equal_the_summary():
    rows = compare(["vgg16", "resnet18"])
    for r in rows:
        p = profile(r.model)
        assert (r.params, r.macs, r.activation_bytes) == (p.params, p.macs, p.activation_bytes)
        info = cnnzoo.model_info(r.model)
        assert r.top1_acc == getattr(info, "ref_top1_acc", None)
        assert r.lecture_top5_err == info.top5_err


def test_compare_keeps_the_reference_top1_only_for_the_network_it_describes(tmp_path,
                                                                            capsys):
    """ImageNet top-1 at 224 says nothing about a 32x32 (or otherwise rebuilt) network."""
    own, small, knob = (compare(["resnet18"], size, knobs=k)[0] for size, k in [
        (None, None), ((3, 32, 32), None), (None, {"zero_init_residual": True})])
    assert own.top1_acc == cnnzoo.model_info("resnet18").ref_top1_acc and own.top1_source
    assert small.top1_acc is None and small.top1_source == "" and small.macs < own.macs
    assert knob.top1_acc is None
    assert main(["compare", "resnet18", "--input", "3x32x32", "--plot",
                 str(tmp_path / "c.png")]) == 2
    assert "at this input size and build" in capsys.readouterr().err


def test_bubble_names_overlap_neither_each_other_nor_other_bubbles():
    """GoogLeNet and ResNet-18 sit side by side (1.5 and 1.8 G-MACs, both 69.8%)."""
    import matplotlib.pyplot as plt
    from matplotlib.transforms import Bbox

    from cnnzoo.analysis.compare import bubble_figure, bubbles

    rows = compare(["googlenet", "resnet18", "vgg16", "alexnet", "squeezenet1_0"])
    points, _ = bubbles(rows)
    fig = bubble_figure(rows)
    try:
        (ax,) = fig.axes
        renderer = fig.canvas.get_renderer()
        boxes = {t.get_text(): t.get_window_extent(renderer) for t in ax.texts}
        assert sorted(boxes) == sorted(b.model for b in points)
        circles = {}
        for b in points:
            x, y = ax.transData.transform((b.gmacs, b.top1_acc))
            r = (b.area / math.pi) ** 0.5 * fig.dpi / 72
            circles[b.model] = Bbox.from_extents(x - r, y - r, x + r, y + r)
        for name, box in boxes.items():
            assert not any(box.overlaps(o) for n, o in boxes.items() if n != name), name
            assert not any(box.overlaps(c) for n, c in circles.items() if n != name), name
        legend = ax.get_legend()
        assert legend.get_title().get_text() == "parameters"
        assert [t.get_text() for t in legend.get_texts()] == ["5M", "25M", "100M"]
    finally:
        plt.close(fig)


class _WithReference:
    """A ModelInfo stand-in with reference top-1 numbers of our choosing."""

    def __init__(self, info, acc):
        self._info, self.ref_top1_acc = info, acc
        self.ref_source = "test" if acc is not None else ""

    def __getattr__(self, name):
        return getattr(self._info, name)


ACC = {"alexnet": 56.5, "vgg16": 71.6, "resnet50": 76.1, "resnet152": 78.3, "lenet5": None}


@pytest.fixture
def reference_accuracies(monkeypatch):
    from cnnzoo.models import registry

    real = registry.model_info
    monkeypatch.setattr(registry, "model_info",
                        lambda name: _WithReference(real(name), ACC.get(name)))


def test_compare_plots_top1_vs_gmacs_with_area_proportional_to_params(reference_accuracies):
    import matplotlib.pyplot as plt

    from cnnzoo.analysis.compare import bubble_figure, bubbles

    rows = compare(["alexnet", "vgg16", "resnet50", "resnet152", "lenet5"])
    assert [r.top1_acc for r in rows] == [56.5, 71.6, 76.1, 78.3, None]
    assert rows[0].lecture_top5_err == cnnzoo.model_info("alexnet").top5_err  # kept apart
    points, skipped = bubbles(rows)
    assert skipped == ["lenet5"] and [b.model for b in points] == list(ACC)[:4]
    fig = bubble_figure(rows)
    try:
        (ax,) = fig.axes
        (scatter,) = ax.collections  # one panel, one scale: resnet50 and 152 side by side
        drawn = [r for r in rows if r.top1_acc is not None]
        assert scatter.get_offsets().tolist() == [[r.macs / 1e9, r.top1_acc] for r in drawn]
        sizes = scatter.get_sizes()
        ratios = [s / r.params for s, r in zip(sizes, drawn)]
        assert max(ratios) == pytest.approx(min(ratios))  # area proportional to params
        assert sizes.tolist() == [b.area for b in points]
        assert "single crop" in ax.get_ylabel()
        assert any("not plotted" in t.get_text() and "lenet5" in t.get_text()
                   for t in fig.texts)
    finally:
        plt.close(fig)


def test_compare_cli_lists_unplotted_models_and_the_lecture_column(reference_accuracies,
                                                                   tmp_path, capsys):
    png = tmp_path / "cmp.png"
    assert main(["compare", "resnet50", "lenet5", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "lect. top-5 err" in out and "1 of 2 models plotted" in out
    assert "table only: lenet5" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("resnet50 "))
    assert "76.1%" in line and line.rstrip().endswith("test")


def test_compare_latency_is_measured():
    (r,) = compare(["lenet5"], latency=True, iters=2)
    assert r.latency_ms is not None and r.latency_ms > 0


def test_summary_and_compare_pass_builder_options(capsys):
    assert main(["summary", "alexnet", "--input", "3x32x32", "--small-input", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d == json.loads(json.dumps(profile("alexnet", (3, 32, 32),
                                              small_input=True).as_dict()))
    assert main(["summary", "resnet50", "--knob", "groups=32", "--knob", "width_per_group=4",
                 "--totals"]) == 0
    assert f"{profile('resnext50_32x4d').macs:,}" in capsys.readouterr().out
    # --small-input goes to the models that have the knob; resnet20 is natively small
    rows = compare(["alexnet", "resnet20"], (3, 32, 32), small_input=True)
    assert rows[0].macs == profile("alexnet", (3, 32, 32), small_input=True).macs
    assert main(["compare", "alexnet", "resnet20", "--input", "3x32x32", "--small-input",
                 "--knob", "stochastic_depth=0.1", "--json"]) == 2  # alexnet has no such knob
    assert "alexnet does not take stochastic_depth" in capsys.readouterr().err


@pytest.mark.parametrize("text, value", [("dropout=0.2", 0.2), ("groups=32", 32),
                                         ("small_input=true", True), ("aux_logits=False", False),
                                         ("version=1_1", "1_1"), ("shortcut=B", "B"),
                                         ("act= tanh ", "tanh")])
def test_knob_values(text, value):
    from cnnzoo.cli.analysis import knob

    key, v = knob(text)
    assert key == text.split("=")[0] and v == value and type(v) is type(value)


def test_malformed_knob_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["summary", "vgg16", "--knob", "dropout"])
    assert e.value.code == 2 and "expected key=value" in capsys.readouterr().err


@pytest.mark.parametrize("argv, says", [
    (["conv", "--input", "abc"], "cnnzoo conv: error: argument --input: invalid int value"),
    (["trian"], "cnnzoo: error: argument COMMAND: invalid choice: 'trian'"),
    (["summary", "vgg16", "--batch", "0"], "cnnzoo summary: error: argument --batch"),
])
def test_a_bad_flag_is_one_line(argv, says, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith(says) and err.count("\n") == 1  # no usage block


@pytest.mark.parametrize("argv", [["models", "vgg"], ["summary", "inception_v4", "--json"]])
def test_closed_pipe_is_quiet(argv):
    """`cnnzoo models | head`: the reader goes away before the output is written."""
    p = subprocess.Popen([sys.executable, "-m", "cnnzoo", *argv], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.close()  # nobody reads: the first flush hits a closed pipe
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 141
    assert err == ""  # no BrokenPipeError traceback, no "Exception ignored" at exit
