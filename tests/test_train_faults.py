"""A real `python -m cnnzoo train` process killed mid-epoch: SIGKILL loses at most the work
since the last checkpoint; SIGTERM saves one before exiting. Tiny model, synthetic data."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from cnnzoo.runs import load_run
from cnnzoo.train.checkpoint import load_checkpoint

STEPS_PER_EPOCH = 1843 // 16  # synthetic: 2048 images, 10% validation, batch 16


def start(out):
    cmd = [sys.executable, "-m", "cnnzoo", "train", "lenet5", "--dataset", "synthetic",
           "--out", str(out), "--epochs", "200", "--batch-size", "16", "--log-every", "1",
           "--threads", "1", "--no-monitor"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_mid_epoch(proc, out, timeout=60.0) -> int:
    """Block until a step record of epoch >= 2 lies in the first half of its epoch."""
    t0 = time.monotonic()
    metrics = out / "metrics.jsonl"
    while time.monotonic() - t0 < timeout:
        assert proc.poll() is None, proc.communicate()
        if (out / "trainer_state.json").exists() and metrics.exists():
            lines = metrics.read_text().splitlines()
            for line in reversed(lines[-3:]):
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                pos = rec["step"] % STEPS_PER_EPOCH
                if rec["kind"] == "step" and rec["step"] > STEPS_PER_EPOCH and (
                        5 < pos < STEPS_PER_EPOCH // 2):
                    return rec["step"]
        time.sleep(0.005)
    proc.kill()
    pytest.fail("the run never reached the middle of its second epoch")


def test_sigkill_mid_epoch_leaves_a_complete_run(tmp_path):
    out = tmp_path / "run"
    proc = start(out)
    step = wait_mid_epoch(proc, out)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["batch"] == 0 and state["step"] == state["epoch"] * STEPS_PER_EPOCH
    assert step - state["step"] <= STEPS_PER_EPOCH  # lost at most the epoch in progress
    model, cfg = load_run(out, which="last")
    sd, _, resume_state = load_checkpoint(out)
    assert resume_state["step"] == state["step"]
    assert all(torch.equal(sd[k], v) for k, v in load_file(str(out / "weights.safetensors"))
               .items())
    assert cfg["model"] == "lenet5" and not model.training
    # and the run goes on from there
    r = subprocess.run([sys.executable, "-m", "cnnzoo", "train", "lenet5", "--dataset",
                        "synthetic", "--out", str(out), "--resume", "--epochs",
                        str(state["epoch"] + 1), "--no-monitor", "--threads", "1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "trainer_state.json").read_text())["epoch"] == state["epoch"] + 1


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_sigint_saves_a_checkpoint_before_exiting(tmp_path, signum):
    out = tmp_path / "run"
    proc = start(out)
    step = wait_mid_epoch(proc, out)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted: checkpoint saved at step" in err
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["step"] >= step and state["batch"] > 0  # a mid-epoch checkpoint
    assert state["step"] == (state["epoch"]) * STEPS_PER_EPOCH + state["batch"]
