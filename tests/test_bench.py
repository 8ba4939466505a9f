"""The measuring library and `cnnzoo bench`: structure of what is reported, at tiny settings
(no timing targets here: timings on a shared machine prove nothing)."""

from __future__ import annotations

import json

import pytest
import torch

from cnnzoo.bench import interleaved, machine_info
from cnnzoo.bench.measure import Candidate, measure, peak_memory
from cnnzoo.cli import main

TINY = ["--batch", "2", "--rounds", "2", "--min-time", "0", "--warmup", "1"]


def run_json(capsys, *argv):
    assert main(["bench", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_interleaved_rounds_exclude_warmup():
    calls = []
    t = interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                    rounds=3, min_time=0.0, warmup=2)
    assert calls[:4] == ["a", "a", "b", "b"]  # warm-up first, untimed
    assert calls[4:] == ["a", "b"] * 3  # then one call each per round, interleaved
    assert len(t["a"].rounds) == 3 and t["a"].median >= 0 and t["a"].spread >= 0


def test_machine_info_reads_cpu_model_and_flags():
    info = machine_info()
    assert info["cores"] >= 1 and info["threads"] == torch.get_num_threads()
    assert info["torch"] == torch.__version__ and info["device"] == "cpu"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")), [])
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    assert set(info["cpu_flags"]) <= set(flags)
    assert ("avx2" in flags) == ("avx2" in info["cpu_flags"])


def test_peak_memory_sees_each_candidates_allocation():
    if peak_memory(lambda: None, torch.device("cpu")) is None:
        pytest.skip("no /proc/self/clear_refs here")
    alloc = lambda: torch.ones(64, 2**20).sum()  # noqa: E731  (256 MB, freed at once)
    # the second candidate must not read 0 because the allocator kept the first one's pages
    cands = [Candidate(n, alloc, 1, 1.0) for n in ("a", "b")]
    rows = measure(cands, device=torch.device("cpu"), rounds=1, min_time=0, warmup=0)
    assert [r["peak_memory_bytes"] > 200 * 2**20 for r in rows["candidates"]] == [True, True]
    no = measure([Candidate("c", alloc, 1, 1.0, memory=False)], device=torch.device("cpu"),
                 rounds=1, min_time=0, warmup=0)
    assert no["candidates"][0]["peak_memory_bytes"] is None


def test_bench_infer_json(capsys):
    r = run_json(capsys, "lenet5", *TINY)
    assert r["model"] == "lenet5" and r["mode"] == "infer" and r["batch"] == 2
    assert r["input_size"] == [1, 32, 32] and r["macs_per_image"] > 0
    for key in ("cpu", "cpu_flags", "cores", "torch", "threads", "device"):
        assert key in r["machine"]
    names = [c["name"] for c in r["candidates"]]
    assert names == ["eager NCHW", "cnnzoo inference path"]
    for c in r["candidates"]:
        assert c["images_per_s"] > 0 and c["ms_per_batch"] > 0 and len(c["rounds_ms"]) == 2
        assert c["gflops"] == pytest.approx(2 * r["macs_per_image"] * 2 / c["ms_per_batch"] / 1e6)
        assert c["share_of_conv_peak"] == pytest.approx(c["gflops"] / r["peak"]["conv"]["gflops"])
        assert "share_of_matmul_peak" in c and "peak_memory_bytes" in c and "spread" in c
    assert set(r["peak"]) == {"conv", "matmul"}
    assert "channels-last" in r["peak"]["conv"]["spec"]
    assert any(line.startswith("memory format:") for line in r["inference_path"])


def test_bench_train_and_text_output(capsys):
    r = run_json(capsys, "lenet5", "--train", "--no-peak", *TINY)
    assert r["mode"] == "train" and r["peak"] == {}
    assert r["candidates"][0]["name"].startswith("train step")
    assert main(["bench", "lenet5", "--no-peak", *TINY]) == 0
    text = capsys.readouterr().out
    assert text.startswith("cpu: ") and "inference path / eager:" in text


def test_bench_ladder_json(capsys):
    pytest.importorskip("onnxruntime")
    r = run_json(capsys, "lenet5", "--ladder", "--no-compile", "--no-peak", *TINY)
    rows = r["candidates"]
    assert [c["name"] for c in rows] == ["eager NCHW", "BN folded", "channels-last",
                                         "ONNX Runtime"]
    for c in rows:
        assert c["max_abs_diff"] < 1e-4 * max(1, r["logit_scale"])
        assert c["top1_agreement"] == 1.0
    assert rows[0]["max_abs_diff"] == 0.0
    assert rows[-1]["setup_s"] > 0  # export + session time, apart from steady state
    assert rows[-1]["peak_memory_bytes"] is None  # ORT's arena: not measurable by RSS
    assert main(["bench", "lenet5", "--ladder", "--no-compile", "--no-peak", *TINY]) == 0
    text = capsys.readouterr().out
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("ONNX Runtime"))
    assert line.split()[-2:] == ["1", "n/a"]  # top-1 agreement filled; ORT memory n/a


def test_bench_zoo_writes_table_and_plot(tmp_path, capsys):
    out = tmp_path / "zoo"
    r = run_json(capsys, "--zoo", "--models", "lenet5*", "--out", str(out), *TINY)
    assert [row["model"] for row in r["rows"]] == ["lenet5_1998", "lenet5"]
    for row in r["rows"]:
        assert row["macs"] > 0 and row["eager_ms"] > 0 and row["path_ms"] > 0
    assert (out / "zoo.png").stat().st_size > 1000
    assert json.loads((out / "zoo.json").read_text())["rows"] == r["rows"]
    table = (out / "zoo.md").read_text()
    assert "| lenet5 | 1x32x32 |" in table and "Inference path slower than eager:" in table


def test_bench_errors_are_one_line(capsys):
    assert main(["bench"]) == 2
    assert "name a MODEL" in capsys.readouterr().err
    assert main(["bench", "lenet5", "--ladder", "--amp"]) == 2
    assert "drop --amp" in capsys.readouterr().err
    assert main(["bench", "lenet5", "--input", "3x2"]) == 2
    err = capsys.readouterr().err
    assert "--input" in err and len(err.strip().splitlines()) == 1
    assert main(["bench", "--zoo", "--models", "nothing*"]) == 2
    assert "matches no registered model" in capsys.readouterr().err
