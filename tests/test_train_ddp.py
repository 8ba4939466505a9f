"""torchrun with 2 CPU processes (gloo) matches one process with the same global batch.

LeNet-5 has no BatchNorm and no dropout, and augmentation is off, so both runs compute the
same steps; only the order of float sums differs (DDP averages two half-batch gradients).
"""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

ARGS = ["train", "lenet5", "--dataset", "synthetic", "--epochs", "2", "--batch-size", "64",
        "--augment", "", "--no-monitor", "--threads", "1", "--log-every", "5"]


def run(cmd, out):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(cmd + ARGS + ["--out", str(out)], capture_output=True, text=True,
                       timeout=240, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_two_process_ddp_matches_single_process(tmp_path):
    run([sys.executable, "-m", "cnnzoo"], tmp_path / "single")
    r = run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
             "--master_port", "29533", "-m", "cnnzoo"], tmp_path / "ddp")
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
