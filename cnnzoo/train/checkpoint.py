"""The run folder (docs/ARCHITECTURE.md, "Run folder"): written atomically, read without pickle.

RUN/config.json                 what rebuilds model + data + recipe
RUN/weights.safetensors         model at the last checkpoint (last epoch, or mid-epoch on
                                SIGINT/SIGTERM); best.safetensors: best validation accuracy
RUN/trainer_state.safetensors   the resume point in ONE file: model + optimizer tensors + RNG
                                tensors, and the JSON state (epoch, step, schedule, python
                                RNG ...) in its metadata; one atomic rename commits it all
RUN/trainer_state.json          the same JSON state, for people and tools
RUN/metrics.jsonl               appended live; cut back to the checkpoint on resume
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from cnnzoo.errors import CheckpointError, CnnzooError
from cnnzoo.utils.io import atomic_path, atomic_write_bytes, atomic_write_json

STATE = "trainer_state.safetensors"


def _contiguous(sd: dict) -> dict:
    return {k: v.detach().contiguous().cpu() for k, v in sd.items()}


def save_weights(path: Path, state_dict: dict, metadata: dict | None = None) -> None:
    atomic_write_bytes(path, save(_contiguous(state_dict), metadata=metadata))


# --- RNG ----------------------------------------------------------------------------------

def rng_state() -> tuple[dict, dict]:
    """(tensors, json) of every RNG the training loop touches."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(keys.astype(np.int64))
    py = random.getstate()
    meta = {"numpy": [kind, int(pos), int(has_gauss), float(gauss)],
            "python": [py[0], list(py[1]), py[2]]}
    return tensors, meta


def set_rng_state(tensors: dict, meta: dict) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(t for t in tensors if t.startswith("rng.cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    kind, pos, has_gauss, gauss = meta["numpy"]
    np.random.set_state((kind, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss,
                         gauss))
    v, state, g = meta["python"]
    random.setstate((v, tuple(state), g))


# --- optimizer: tensors to safetensors, the rest to JSON ----------------------------------

def optimizer_state(opt: torch.optim.Optimizer) -> tuple[dict, dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for name, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim.{idx}.{name}"] = v
            else:
                scalars[f"{idx}.{name}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer_state(opt: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    state: dict = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = v
    for key, v in meta["scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()}
              for g in meta["param_groups"]]
    opt.load_state_dict({"state": state, "param_groups": groups})


# --- the resume point ---------------------------------------------------------------------

def save_checkpoint(run_dir: Path, model_sd: dict, opt, state: dict, *, best: bool,
                    run_config: dict | None = None) -> None:
    """Write weights (+ best), then the resume point, then its JSON copy; each atomic.

    The weights files carry `run_config` (model, classes, mean/std ...) in their metadata
    under "cnnzoo", so one copied on its own still says what it holds.
    """
    meta = {"step": str(state["step"]), "epoch": str(state["epoch"])}
    if run_config is not None:
        meta["cnnzoo"] = json.dumps(run_config)
    save_weights(run_dir / "weights.safetensors", model_sd, meta)
    if best:
        save_weights(run_dir / "best.safetensors", model_sd, meta)
    opt_t, opt_meta = optimizer_state(opt)
    rng_t, rng_meta = rng_state()
    full = dict(state, optimizer=opt_meta, rng=rng_meta)
    tensors = {f"model.{k}": v for k, v in model_sd.items()} | opt_t | rng_t
    blob = save(_contiguous(tensors), metadata={"state": json.dumps(full)})
    atomic_write_bytes(run_dir / STATE, blob)
    atomic_write_json(run_dir / "trainer_state.json", state)


def load_checkpoint(run_dir: Path) -> tuple[dict, dict, dict]:
    """(model state_dict, other tensors, JSON state) of the resume point."""
    path = Path(run_dir) / STATE
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            state = json.loads(f.metadata()["state"])
    except (OSError, SafetensorError, KeyError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: cannot read the resume point ({e})") from None
    model_sd = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    other = {k: v for k, v in tensors.items() if not k.startswith("model.")}
    return model_sd, other, state


def remove_stale_temp_files(run_dir: Path) -> list[Path]:
    """Temp files a killed writer left behind (`.NAME.XXXX.tmp`, see cnnzoo.utils.io)."""
    stale = [p for p in Path(run_dir).glob(".*.tmp") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


# --- the output folder --------------------------------------------------------------------

def prepare_out_dir(out: Path, need_bytes: int) -> None:
    """Fail before training when `out` cannot be written or the disk is too full."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out / ".write-test", b"ok")
        (out / ".write-test").unlink()
    except OSError as e:
        raise CheckpointError(f"--out {out}: cannot write there ({e.strerror or e})") from None
    free = shutil.disk_usage(out).free
    if free < need_bytes:
        raise CheckpointError(f"--out {out}: only {free / 2**20:.1f} MiB free on its disk, "
                              f"checkpoints need about {need_bytes / 2**20:.1f} MiB")


# --- metrics ------------------------------------------------------------------------------

class MetricsLog:
    """RUN/metrics.jsonl: one JSON object per line, flushed as written (rank 0 only)."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path, self.enabled = path, enabled
        self._f = open(path, "a", encoding="utf-8") if enabled else None  # noqa: SIM115

    def write(self, rec: dict) -> None:
        if self._f is not None:
            self._f.write(json.dumps(_finite(rec), allow_nan=False) + "\n")
            self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def _finite(v):
    """NaN/inf become null: strict JSON readers reject them (a diverged run logs them)."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def truncate_metrics(path: Path, step: int) -> None:
    """Drop records past `step` (written after the checkpoint a resumed run starts from)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line torn by a kill
        if rec.get("step", 0) <= step:
            keep.append(line)
    with atomic_path(path) as tmp:
        tmp.write_text("".join(s + "\n" for s in keep), encoding="utf-8")


# --- reading a run ------------------------------------------------------------------------

def read_config(run_dir: str | os.PathLike) -> dict:
    path = Path(run_dir) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: not found (is {run_dir} a cnnzoo run folder?)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: cannot read ({e})") from None
    missing = [k for k in ("model", "num_classes", "in_chans") if k not in config]
    if not isinstance(config, dict) or missing:
        raise CheckpointError(f"{path}: missing key(s) {', '.join(missing)}")
    return config


def build_model(config: dict) -> torch.nn.Module:
    from cnnzoo.models.registry import create_model

    return create_model(config["model"], num_classes=config["num_classes"],
                        in_chans=config["in_chans"], **config.get("model_kwargs", {}))


def load_run(run_dir: str | os.PathLike, which: str = "best", device="cpu"):
    """(model in eval mode on `device`, config dict) of a run folder.

    which: "best" (best validation accuracy; falls back to the last weights) or "last".
    """
    if which not in ("best", "last"):
        raise CnnzooError(f"which must be 'best' or 'last', got {which!r}")
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    names = ["best.safetensors", "weights.safetensors"] if which == "best" else [
        "weights.safetensors"]
    path = next((run_dir / n for n in names if (run_dir / n).exists()), None)
    if path is None:
        raise CheckpointError(f"{run_dir}: no {' or '.join(names)} (no epoch finished yet?)")
    try:
        sd = load_file(str(path))
    except (OSError, SafetensorError) as e:
        raise CheckpointError(f"{path}: cannot read weights ({e})") from None
    model = build_model(config)
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise CheckpointError(f"{path}: does not fit {config['model']}: "
                              f"{' '.join(first[:3])[:300]}") from None
    return model.to(device).eval(), config
