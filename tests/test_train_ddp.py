"""torchrun with 2 CPU processes (gloo) matches one process with the same global batch.

LeNet-5 has no BatchNorm and no dropout, and augmentation is off, so both runs compute the
same steps; only the order of float sums differs (DDP averages two half-batch gradients).
Plain SGD, not the recipe's AdamW: Adam divides by the root of tiny second moments, which
amplifies those last-bit differences into ~1e-3 after a hundred steps (seen as a flaky test).
"""

import json
import os
import re
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

ARGS = ["train", "lenet5", "--dataset", "synthetic", "--epochs", "2", "--batch-size", "64",
        "--optimizer", "sgd", "--lr", "0.05", "--augment", "", "--no-monitor", "--threads", "1",
        "--log-every", "5"]


# --standalone: torchrun picks a free port itself
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
            "2", "-m", "cnnzoo"]


def run(cmd, out, *extra, code=0):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(cmd + ARGS + ["--out", str(out), *extra], capture_output=True,
                       text=True, timeout=240, env=env)
    assert r.returncode == code, r.stderr[-3000:]
    return r


def test_two_process_ddp_matches_single_process(tmp_path):
    run([sys.executable, "-m", "cnnzoo"], tmp_path / "single")
    r = run(TORCHRUN, tmp_path / "ddp")
    assert r.stderr.count("epoch 2/2") == 1  # only rank 0 reports
    a = load_file(str(tmp_path / "single" / "weights.safetensors"))
    b = load_file(str(tmp_path / "ddp" / "weights.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-5), k
    sa = json.loads((tmp_path / "single" / "trainer_state.json").read_text())
    sb = json.loads((tmp_path / "ddp" / "trainer_state.json").read_text())
    assert sa["step"] == sb["step"] == 2 * (1843 // 64)
    ea = [json.loads(x) for x in (tmp_path / "single" / "metrics.jsonl").read_text().split("\n")
          if '"kind": "epoch"' in x]
    eb = [json.loads(x) for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().split("\n")
          if '"kind": "epoch"' in x]
    # train metrics are reduced over both ranks: the same images as the single process
    assert ea[-1]["train_loss"] == pytest.approx(eb[-1]["train_loss"], rel=1e-3)
    assert ea[-1]["train_acc"] == pytest.approx(eb[-1]["train_acc"], abs=2e-3)
    # validation is sharded without padding: every image counted once, as in one process
    assert ea[-1]["val_loss"] == pytest.approx(eb[-1]["val_loss"], rel=1e-5)
    assert ea[-1]["val_acc"] == eb[-1]["val_acc"]


def test_time_limit_stops_every_rank_at_the_same_step(tmp_path):
    # each rank reads its own clock; unless they agree, one waits forever at a collective
    out = tmp_path / "limit"
    run(TORCHRUN, out, "--epochs", "500", "--time-limit", "3")
    state = json.loads((out / "trainer_state.json").read_text())
    assert 0 < state["epoch"] < 500 and state["step"] > 0


def test_unwritable_out_fails_cleanly_on_every_rank(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    r = run(TORCHRUN, f / "run", code=1)  # torchrun's code when a worker failed
    assert "cnnzoo train: error: --out" in r.stderr and "cannot write there" in r.stderr
    # Every rank leaves through cnnzoo's error path (2), the first one out is the root
    # cause torchrun names; torchrun then SIGTERMs a rank still exiting (-15): its rule,
    # not a second failure. Never an abort (-6: gloo's worker thread releasing a tensor
    # after interpreter shutdown began; distributed.py waits for that release).
    codes = [int(c) for c in re.findall(r"exitcode\s*:\s*(-?\d+)", r.stderr)]
    assert codes and set(codes) <= {2, -15}, r.stderr[-3000:]
    assert re.search(r"exitcode\s*:\s*2\b", r.stderr.split("Root Cause")[-1])
    assert "SIGABRT" not in r.stderr and "terminate called" not in r.stderr
