"""The trainer's resume point; everything else in a run folder belongs to cnnzoo.runs.

RUN/trainer_state.safetensors   the resume point in ONE file: model + optimizer tensors + RNG
                                tensors, and the JSON state (epoch, step, schedule, python
                                RNG ...) in its metadata; one atomic rename commits it all
RUN/trainer_state.json          the same JSON state, for people and tools
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from cnnzoo import runs
from cnnzoo.errors import CheckpointError
from cnnzoo.runs import load_run  # noqa: F401  (its old home: callers import it from here)
from cnnzoo.utils.io import atomic_write_bytes, atomic_write_json

STATE = "trainer_state.safetensors"
STATE_JSON = "trainer_state.json"


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

    The weights files carry `run_config` in their metadata (cnnzoo.runs.save_weights).
    """
    meta = dict(config=run_config, step=state["step"], epoch=state["epoch"])
    runs.save_weights(run_dir / runs.WEIGHTS, model_sd, **meta)
    if best:
        runs.save_weights(run_dir / runs.BEST, model_sd, **meta)
    opt_t, opt_meta = optimizer_state(opt)
    rng_t, rng_meta = rng_state()
    full = dict(state, optimizer=opt_meta, rng=rng_meta)
    tensors = {f"model.{k}": v for k, v in model_sd.items()} | opt_t | rng_t
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write_bytes(run_dir / STATE, save(tensors, metadata={"state": json.dumps(full)}))
    atomic_write_json(run_dir / STATE_JSON, state)


def load_checkpoint(run_dir: Path) -> tuple[dict, dict, dict]:
    """(model state_dict, other tensors, JSON state) of the resume point."""
    path = Path(run_dir) / STATE
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), "pt") as f:
            state = json.loads(f.metadata()["state"])
    except (OSError, SafetensorError, KeyError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: cannot read the resume point ({e})") from None
    model_sd = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    other = {k: v for k, v in tensors.items() if not k.startswith("model.")}
    return model_sd, other, state
