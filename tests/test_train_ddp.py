"""torchrun with 2 CPU processes (gloo) matches one process with the same global batch, on
one machine and on two "machines" (two torchrun agents meeting at a c10d rendezvous).

LeNet-5 has no BatchNorm and no dropout, and augmentation is off, so both runs compute the
same steps; only the order of float sums differs (DDP averages two half-batch gradients).
Plain SGD, not the recipe's AdamW: Adam divides by the root of tiny second moments, which
amplifies those last-bit differences into ~1e-3 after a hundred steps (seen as a flaky test).
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

ARGS = ["train", "lenet5", "--dataset", "synthetic", "--epochs", "2", "--batch-size", "64",
        "--optimizer", "sgd", "--lr", "0.05", "--augment", "", "--no-monitor", "--threads", "1",
        "--log-every", "5"]


# --standalone: torchrun picks a free port itself
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
            "2", "-m", "cnnzoo"]


def run(cmd, out, *extra, code=0, args=ARGS):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(cmd + args + ["--out", str(out), *extra], capture_output=True,
                       text=True, timeout=240, env=env)
    assert r.returncode == code, r.stderr[-3000:]
    return r


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """The one-process run every data-parallel run must match."""
    out = tmp_path_factory.mktemp("single") / "run"
    run([sys.executable, "-m", "cnnzoo"], out, "--eval-test")
    return out


def assert_same_run(a_dir, b_dir):
    a = load_file(str(a_dir / "weights.safetensors"))
    b = load_file(str(b_dir / "weights.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        # Summation order differs (two half-batch gradients averaged vs one batch), and 58
        # SGD steps carry that rounding forward: compare each tensor as a whole. A wrong
        # reduction (a sum for a mean, a rank's gradient lost) is off by tens of percent.
        rel = (a[k] - b[k]).norm() / a[k].norm().clamp_min(1e-12)
        assert rel < 1e-4, (k, rel.item())
    sa = json.loads((a_dir / "trainer_state.json").read_text())
    sb = json.loads((b_dir / "trainer_state.json").read_text())
    assert sa["step"] == sb["step"] == 2 * (1843 // 64)
    ra = [json.loads(x) for x in (a_dir / "metrics.jsonl").read_text().splitlines()]
    rb = [json.loads(x) for x in (b_dir / "metrics.jsonl").read_text().splitlines()]
    ea, eb = ([r for r in rs if r["kind"] == "epoch"] for rs in (ra, rb))
    # train metrics are reduced over both ranks: the same images as the single process
    assert ea[-1]["train_loss"] == pytest.approx(eb[-1]["train_loss"], rel=1e-3)
    assert ea[-1]["train_acc"] == pytest.approx(eb[-1]["train_acc"], abs=2e-3)
    # validation is sharded without padding: every image counted once, as in one process
    assert ea[-1]["val_loss"] == pytest.approx(eb[-1]["val_loss"], rel=1e-5)
    assert ea[-1]["val_acc"] == eb[-1]["val_acc"]
    # --eval-test: the best weights, read by rank 0 and sent to the others, on the test split
    ta, tb = ([r for r in rs if r["kind"] == "test"] for rs in (ra, rb))
    assert len(ta) == len(tb) == 1 and ta[0]["test_acc"] == tb[0]["test_acc"]


def test_two_process_ddp_matches_single_process(single, tmp_path):
    r = run(TORCHRUN, tmp_path / "ddp", "--eval-test")
    assert r.stderr.count("epoch 2/2") == 1  # only rank 0 reports
    assert_same_run(single, tmp_path / "ddp")


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


# --- several machines: two torchrun agents on 127.0.0.1, one process each ------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for t in os.listdir(f"/proc/{pid}/task")
                for c in open(f"/proc/{pid}/task/{t}/children").read().split()]
    except OSError:
        return []


def two_nodes(tmp_path, args, *extra, env=({}, {}), timeout=240):
    """`torchrun --nnodes 2 --rdzv-backend c10d` twice, as on two machines: each agent has its
    own --out (tmp_path/node0, node1) and cache, as a rank on another machine sees its own
    disk. c10d ranks go by arrival, not by agent. Returns [(exit code, output)] per agent."""
    port, procs, logs = free_port(), [], []
    try:
        for node in (0, 1):
            cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2",
                   "--nproc_per_node", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint",
                   f"127.0.0.1:{port}", "--rdzv-id", tmp_path.name, "-m", "cnnzoo", *args,
                   "--out", str(tmp_path / f"node{node}"), *extra]
            logs.append(tmp_path / f"agent{node}.log")
            e = dict(os.environ, OMP_NUM_THREADS="1", CNNZOO_CACHE=str(tmp_path / f"cache{node}"),
                     **env[node])
            with open(logs[-1], "w") as f:
                procs.append(subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=e))
        deadline = time.monotonic() + timeout
        for p in procs:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
        return [(p.returncode, log.read_text()) for p, log in zip(procs, logs)]
    finally:  # a hung agent: SIGTERM (it stops its workers), then SIGKILL what is left
        live = [p for p in procs if p.poll() is None]
        workers = [c for p in live for c in _children(p.pid)]
        for p in live:
            p.terminate()
        for p in live:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _written(tmp_path, results):
    """The one run folder two nodes wrote: rank 0's, on the agent whose log reports epochs."""
    assert [code for code, _ in results] == [0, 0], results[0][1][-3000:] + results[1][1][-3000:]
    rank0 = [i for i, (_, log) in enumerate(results) if "epoch 2/2" in log]
    assert len(rank0) == 1
    assert sorted(p.name for p in tmp_path.glob("node*")) == [f"node{rank0[0]}"]
    return tmp_path / f"node{rank0[0]}"


@pytest.mark.slow
def test_two_nodes_match_single_process(single, tmp_path):
    # --eval-test: the other rank has no best.safetensors on its disk; it gets rank 0's
    results = two_nodes(tmp_path, ARGS, "--eval-test")
    assert_same_run(single, _written(tmp_path, results))


def test_resume_on_two_nodes_needs_the_checkpoint_on_both(single, tmp_path):
    shutil.copytree(single, tmp_path / "node0")  # one machine holds the run, the other not
    before = sorted((p.name, p.stat().st_mtime_ns) for p in (tmp_path / "node0").iterdir())
    results = two_nodes(tmp_path, ARGS, "--resume", "--epochs", "3")
    for code, log in results:
        assert code == 1, log[-3000:]
        assert "cnnzoo train: error: --resume: rank " in log, log[-3000:]
        assert "on several machines --out must be one shared folder" in log
        assert set(re.findall(r"exitcode\s*:\s*(-?\d+)", log)) == {"2"}, log[-3000:]
    assert any("a checkpoint at step 56" in log for _, log in results)
    assert any("finds no checkpoint" in log for _, log in results)
    # checked before anything is written: the run is untouched, no second folder appears
    assert sorted((p.name, p.stat().st_mtime_ns) for p in (tmp_path / "node0").iterdir()) \
        == before
    assert not (tmp_path / "node1").exists()


BN_ARGS = ["train", "resnet20", "--dataset", "synthetic", "--epochs", "1", "--batch-size", "64",
           "--optimizer", "sgd", "--momentum", "0", "--lr", "0.05", "--augment", "",
           "--no-monitor", "--threads", "1", "--log-every", "5", "--sync-bn"]


def test_sync_bn_on_cpu_is_one_clear_error_on_every_rank(tmp_path):
    # torch's SyncBatchNorm has CUDA kernels only: under gloo on CPU, one line, before training
    results = two_nodes(tmp_path, BN_ARGS)
    for code, log in results:
        assert code == 1, log[-3000:]
        assert ("cnnzoo train: error: --sync-bn: torch's SyncBatchNorm runs on CUDA only"
                in log), log[-3000:]
        assert set(re.findall(r"exitcode\s*:\s*(-?\d+)", log)) == {"2"}, log[-3000:]
        assert "cnnzoo/train/" not in log  # no traceback through cnnzoo: the one line
    assert not list(tmp_path.glob("node*"))


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs (one per node)")
def test_two_nodes_sync_bn_match_single_process(tmp_path):
    # statistics over the global batch: the two half-batches normalise as the whole one does
    run([sys.executable, "-m", "cnnzoo"], tmp_path / "single", args=BN_ARGS)
    results = two_nodes(tmp_path, BN_ARGS, env=({"CUDA_VISIBLE_DEVICES": "0"},
                                                 {"CUDA_VISIBLE_DEVICES": "1"}))
    assert [code for code, _ in results] == [0, 0]
    out = next(tmp_path.glob("node*"))
    a = load_file(str(tmp_path / "single" / "weights.safetensors"))
    b = load_file(str(out / "weights.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), rtol=1e-4, atol=1e-5), k


# --- the pieces, in one process and under a two-process gloo group ---------------------------

TINY = {"num_samples": 160, "channels": 1, "size": 28}  # 144 to train: 4 steps of 32


def test_sync_bn_keeps_the_state_dict_so_the_run_loads_into_the_plain_model(tmp_path):
    from cnnzoo.train import TrainConfig, Trainer, build_parts, load_run
    from cnnzoo.train import distributed as dist

    cfg = TrainConfig(model="resnet20", dataset="synthetic", dataset_kwargs=TINY, epochs=1,
                      batch_size=32, optimizer="sgd", augment="", monitor=False, threads=1,
                      progress=False, out=str(tmp_path / "run"))
    parts = build_parts(cfg, device=torch.device("cpu"))
    plain = {k: v.clone() for k, v in parts.model.state_dict().items()}
    # what a rank on CUDA does (converting touches no device; on CPU it is refused, below)
    parts.model = dist.sync_batchnorm(parts.model, dist.Dist(0, 2), torch.device("cuda"))
    kinds = {type(m) for m in parts.model.modules()}
    assert torch.nn.SyncBatchNorm in kinds and torch.nn.BatchNorm2d not in kinds
    assert list(parts.model.state_dict()) == list(plain)
    # the optimizer's groups still hold the model's parameters: it trains them
    res = Trainer(parts).run()  # no process group: SyncBatchNorm normalises as BatchNorm
    assert res.step == 4
    model, _ = load_run(tmp_path / "run", which="last")  # the plain resnet20, strict keys
    assert torch.nn.SyncBatchNorm not in {type(m) for m in model.modules()}
    got, trained = model.state_dict(), parts.model.state_dict()
    assert all(torch.equal(got[k], trained[k]) for k in plain)
    assert not torch.equal(got["conv1.weight"], plain["conv1.weight"])
    assert got["bn1.num_batches_tracked"] == 4


def test_sync_bn_in_one_process_warns_and_changes_nothing(capsys):
    from cnnzoo.errors import CnnzooError
    from cnnzoo.models import create_model
    from cnnzoo.train import distributed as dist

    model = create_model("resnet20", num_classes=10, in_chans=1)
    assert dist.sync_batchnorm(model, dist.Dist(), torch.device("cpu")) is model
    assert torch.nn.SyncBatchNorm not in {type(m) for m in model.modules()}
    err = capsys.readouterr().err.splitlines()
    assert err == ["warning: --sync-bn: a single process already normalises over the whole "
                   "batch; nothing to convert (it matters under torchrun)"]
    with pytest.raises(CnnzooError, match=r"^--sync-bn: torch's SyncBatchNorm runs on CUDA "
                       r"only \(torch 2\.\S+ has no CPU kernel for it\); drop --sync-bn on cpu"):
        dist.sync_batchnorm(model, dist.Dist(0, 2), torch.device("cpu"))


def test_cli_sync_bn_flag_reaches_the_trainer(tmp_path, capsys):
    from cnnzoo.cli import main

    conf = tmp_path / "c.json"
    conf.write_text(json.dumps({"dataset_kwargs": TINY}))
    out = tmp_path / "run"
    assert main(ARGS + ["--sync-bn", "--epochs", "1", "--config", str(conf),
                        "--out", str(out)]) == 0
    assert "warning: --sync-bn: a single process" in capsys.readouterr().err
    assert json.loads((out / "config.json").read_text())["train"]["sync_bn"] is True


BROADCAST = """
import torch
from cnnzoo.models import create_model
from cnnzoo.train import distributed as dist

d = dist.setup("cpu")
def model(seed, shift):  # channels-last weights, BatchNorm buffers (float and int64)
    torch.manual_seed(seed)
    m = create_model("resnet20", num_classes=10, in_chans=3).to(memory_format=torch.channels_last)
    for b in m.buffers():
        b.add_(shift)
    return m
m = model(d.rank, d.rank + 1)
dist.broadcast_module(d, m)
ref = model(0, 1)
same = all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), ref.state_dict().values()))
print(f"rank {d.rank}: same as rank 0 {same}, each_rank {dist.each_rank(d, d.rank + 10.0, 'cpu')}")
dist.teardown(d)
"""


def test_broadcast_module_and_each_rank(tmp_path):
    script = tmp_path / "b.py"
    script.write_text(BROADCAST)
    r = subprocess.run(TORCHRUN[:-2] + [str(script)], capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr[-3000:]
    # The ranks share one stdout: a line's text and its newline may interleave with the
    # other rank's, so count the messages rather than compare lines.
    for rank in (0, 1):
        assert r.stdout.count(f"rank {rank}: same as rank 0 True, each_rank [10.0, 11.0]") == 1
