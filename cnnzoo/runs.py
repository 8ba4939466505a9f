"""The run folder: the one place that knows its files, their schema, and how to read them.

```
RUN/config.json            what rebuilds model + data + recipe (CONFIG_KEYS below)
RUN/weights.safetensors    model state_dict at the last checkpoint
RUN/best.safetensors       model state_dict with the best validation accuracy
RUN/metrics.jsonl          strict JSON, one record per line (METRIC_RECORDS below)
RUN/filters/epoch_NNN.png  first-layer filters
RUN/eval/                  `cnnzoo eval` results (cnnzoo.evaluate)
RUN/trainer_state.*        the trainer's resume point (cnnzoo.train.checkpoint)
```
Every write goes through `cnnzoo.utils.io` (temp file + rename); nothing is unpickled.
The weights files carry config.json in their safetensors metadata (key "cnnzoo"), so a
weights file copied on its own still knows its model, classes and normalisation.

Several runs at once (an ensemble): `load_runs(paths)` takes run folders, or parents whose
immediate subfolders are runs (`runs/ens/seed0`, `runs/ens/seed1`, ...), and refuses
members that disagree on what they classify or take (`check_compatible`).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from cnnzoo.errors import CheckpointError, CnnzooError
from cnnzoo.utils.io import atomic_path, atomic_write_bytes, atomic_write_json

CONFIG, WEIGHTS, BEST, METRICS, FILTERS, EVAL = (
    "config.json", "weights.safetensors", "best.safetensors", "metrics.jsonl", "filters",
    "eval")

# config.json: key -> (required, meaning). Readers may rely on every required key.
CONFIG_KEYS: dict[str, tuple[bool, str]] = {
    "model": (True, "registered model name (cnnzoo.models.create_model)"),
    "model_kwargs": (False, "builder knobs the weights were trained with ({} if absent)"),
    "num_classes": (True, "outputs of the classifier"),
    "in_chans": (True, "input channels"),
    "input_size": (True, "[C, H, W] the model was trained on"),
    "classes": (True, "class names, one per output, in label order"),
    "mean": (True, "per-channel mean of the training images (0..1 scale)"),
    "std": (True, "per-channel std of the training images (0..1 scale)"),
    "dataset": (False, "dataset name (cnnzoo.data.load_dataset)"),
    "data_dir": (False, "where the dataset was read from"),
    "dataset_kwargs": (False, "load_dataset options (e.g. a folder's image_size)"),
    "train": (False, "every TrainConfig field, resolved"),
    "cnnzoo_version": (False, "version that wrote the run"),
}

# metrics.jsonl: one JSON object per line, "kind" first. NaN/inf are written as null.
METRIC_RECORDS = {
    "step": ("step", "epoch", "loss", "lr", "time"),  # every --log-every steps
    "epoch": ("epoch", "step", "train_loss", "train_acc", "val_loss", "val_acc", "lr",
              "epoch_time", "images_per_s", "data_wait", "time",
              # with monitoring: per-layer dicts and the warnings printed that epoch
              "update_ratio", "grad_norm", "act_var", "dead_fraction", "warnings"),
    "test": ("step", "test_acc"),  # --eval-test, best weights
}


# --- config.json --------------------------------------------------------------------------

def _is_int(v, lo=1) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= lo


def _is_numbers(v, n) -> bool:
    return (isinstance(v, list) and len(v) == n
            and all(isinstance(x, (int, float)) and math.isfinite(x) for x in v))


def config_problem(config) -> str | None:
    """What is wrong with a run config (one phrase), or None when it follows CONFIG_KEYS."""
    if not isinstance(config, dict):
        return "is not a JSON object"
    missing = [k for k, (req, _) in CONFIG_KEYS.items() if req and k not in config]
    if missing:
        return f"missing key(s) {', '.join(missing)}"
    c, k = config["in_chans"], config["num_classes"]
    checks = [
        (isinstance(config["model"], str) and config["model"], "'model' must be a name"),
        (_is_int(k), f"'num_classes' must be a positive integer, got {k!r}"),
        (_is_int(c), f"'in_chans' must be a positive integer, got {c!r}"),
    ]
    for ok, why in checks:
        if not ok:
            return why
    size, classes = config["input_size"], config["classes"]
    if not (isinstance(size, list) and len(size) == 3 and all(_is_int(v) for v in size)
            and size[0] == c):
        return f"'input_size' must be [C, H, W] with C = in_chans {c}, got {size!r}"
    if not (isinstance(classes, list) and len(classes) == k
            and all(isinstance(n, str) for n in classes)):
        return f"'classes' must be {k} names (num_classes), got {_short(classes)}"
    for key in ("mean", "std"):
        if not _is_numbers(config[key], c):
            return f"'{key}' must be {c} numbers (one per channel), got {config[key]!r}"
    for key in ("model_kwargs", "dataset_kwargs", "train"):
        if config.get(key) is not None and not isinstance(config[key], dict):
            return f"'{key}' must be an object, got {_short(config[key])}"
    return None


def _short(v, n: int = 60) -> str:
    s = repr(v)
    return s if len(s) <= n else s[:n - 3] + "..."


def read_config(run_dir: str | os.PathLike) -> dict:
    """RUN/config.json, checked against CONFIG_KEYS; a CheckpointError naming the file."""
    path = Path(run_dir) / CONFIG
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: not found (is {run_dir} a cnnzoo run folder?)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: cannot read ({e})") from None
    problem = config_problem(config)
    if problem:
        raise CheckpointError(f"{path}: {problem}")
    return config


def write_config(run_dir: str | os.PathLike, config: dict) -> None:
    problem = config_problem(config)
    if problem:  # the writer's bug, not the user's: say it before a run depends on it
        raise ValueError(f"run config {problem}")
    atomic_write_json(Path(run_dir) / CONFIG, config)


def is_run(path: str | os.PathLike) -> bool:
    return (Path(path) / CONFIG).is_file()


# --- weights files ------------------------------------------------------------------------

def save_weights(path: str | os.PathLike, state_dict: dict, config: dict | None = None,
                 **meta) -> None:
    """A state_dict as safetensors; `config` goes into the metadata under "cnnzoo", and any
    other `meta` (step, epoch) as strings."""
    metadata = {k: str(v) for k, v in meta.items()}
    if config is not None:
        metadata["cnnzoo"] = json.dumps(config)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    atomic_write_bytes(path, save(tensors, metadata=metadata or None))


def read_weights(path: str | os.PathLike) -> dict:
    try:
        return load_file(str(path))
    except (OSError, SafetensorError) as e:
        raise CheckpointError(f"{path}: cannot read weights ({e})") from None


def weights_config(path: str | os.PathLike) -> dict | None:
    """The run config a weights file carries (None if it has none)."""
    try:
        with safe_open(str(path), "pt") as f:
            text = (f.metadata() or {}).get("cnnzoo")
        return None if text is None else json.loads(text)
    except (OSError, SafetensorError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: cannot read its metadata ({e})") from None


def weights_path(run_dir: str | os.PathLike, which: str = "best") -> Path:
    """best.safetensors (falling back to the last weights) or weights.safetensors."""
    if which not in ("best", "last"):
        raise CnnzooError(f"which must be 'best' or 'last', got {which!r}")
    run_dir = Path(run_dir)
    names = [BEST, WEIGHTS] if which == "best" else [WEIGHTS]
    path = next((run_dir / n for n in names if (run_dir / n).exists()), None)
    if path is None:
        raise CheckpointError(f"{run_dir}: no {' or '.join(names)} (no epoch finished yet?)")
    return path


# --- loading runs -------------------------------------------------------------------------

def build_model(config: dict) -> torch.nn.Module:
    """The untrained network config.json describes."""
    from cnnzoo.models.registry import create_model

    return create_model(config["model"], num_classes=config["num_classes"],
                        in_chans=config["in_chans"], **(config.get("model_kwargs") or {}))


def load_run(run_dir: str | os.PathLike, which: str = "best", device="cpu"):
    """(model in eval mode on `device`, config dict) of a run folder.

    which: "best" (best validation accuracy; falls back to the last weights) or "last".
    """
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    return _load_model(config, weights_path(run_dir, which), device), config


def _load_model(config: dict, path: Path, device) -> torch.nn.Module:
    sd = read_weights(path)
    model = build_model(config)
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise CheckpointError(f"{path}: does not fit {config['model']}: "
                              f"{' '.join(first[:3])[:300]}") from None
    return model.to(device).eval()


def run_dirs(paths) -> list[Path]:
    """Run folders named by `paths`: each a run, or a folder whose immediate subfolders
    are runs (a multi-seed run's members), expanded in sorted order."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out = []
    for p in map(Path, paths):
        if is_run(p):
            out.append(p)
            continue
        members = sorted(q for q in p.iterdir() if is_run(q)) if p.is_dir() else []
        if not members:
            why = "no such folder" if not p.exists() else (
                f"no {CONFIG}, and no subfolder holds a run")
            raise CheckpointError(f"{p}: not a cnnzoo run folder ({why})")
        out += members
    if not out:
        raise CnnzooError("no runs given")
    return out


def check_compatible(configs: list[dict], paths) -> None:
    """One CnnzooError naming both runs and the values when runs disagree on classes
    (names and count), input channels or input size: their outputs cannot be averaged."""
    paths = [Path(p) for p in paths]
    first, a = configs[0], paths[0]
    for config, b in zip(configs[1:], paths[1:]):
        for key in ("num_classes", "classes", "in_chans", "input_size"):
            va, vb = first[key], config[key]
            if va == vb:
                continue
            if key == "classes":
                i = next(i for i, (x, y) in enumerate(zip(va, vb)) if x != y)
                va, vb = f"{va[i]!r}", f"{vb[i]!r}"
                key = f"class {i}"
            raise CnnzooError(f"runs {a} and {b} do not fit together: {key} is {va} in the "
                              f"first and {vb} in the second")


def load_runs(paths, which: str = "best", device="cpu", check: bool = True):
    """[(model in eval mode, config, run folder)] for every run `paths` names (run_dirs);
    with `check`, the runs must classify the same classes from the same inputs."""
    dirs = run_dirs(paths)
    configs = [read_config(p) for p in dirs]
    if check:
        check_compatible(configs, dirs)
    return [(_load_model(c, weights_path(p, which), device), c, p)
            for c, p in zip(configs, dirs)]


# --- preparing a run folder ---------------------------------------------------------------

def prepare_run_dir(out: Path, need_bytes: int) -> None:
    """Fail before training when `out` cannot be written or the disk is too full, and
    remove temp files a killed writer left behind (`.NAME.XXXX.tmp`, cnnzoo.utils.io)."""
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
    for p in out.glob(".*.tmp"):
        if p.is_file():
            p.unlink(missing_ok=True)


# --- metrics.jsonl ------------------------------------------------------------------------

class MetricsLog:
    """RUN/metrics.jsonl, appended one strict-JSON line per record and flushed as written."""

    def __init__(self, path: str | os.PathLike, enabled: bool = True):
        self.path, self.enabled = Path(path), enabled
        self._f = open(self.path, "a", encoding="utf-8") if enabled else None  # noqa: SIM115

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


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """The records of a metrics.jsonl (or of RUN/metrics.jsonl when given a run folder);
    a torn last line (a run still writing) is skipped."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: cannot read metrics "
                              f"({getattr(e, 'strerror', None) or e})") from None
    records = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            if n == len(lines):  # the trainer may be mid-append
                continue
            raise CheckpointError(f"{path}:{n}: not a JSON line") from None
        if isinstance(rec, dict):
            records.append(rec)
    if not records:
        raise CheckpointError(f"{path}: no metrics records")
    return records


def truncate_metrics(path: str | os.PathLike, step: int) -> None:
    """Drop records past `step` (written after the checkpoint a resumed run starts from)."""
    path = Path(path)
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


# --- the run's data: its test split and its way of reading an image file -------------------

# A folder run's dataset options that say how its photos are read (cnnzoo.data.images).
FOLDER_READ_KEYS = ("resize", "shorter", "interpolation")


def read_run_image(path: str | os.PathLike, config: dict) -> torch.Tensor:
    """An image file as float [C, H, W] in 0..1, read the way the run's training read its
    images (`cnnzoo.data.images.read_image`: EXIF orientation, channels, input size, and a
    folder run's resize options)."""
    from cnnzoo.data.images import Preprocess, read_image

    c, h, w = config["input_size"]
    kw = (config.get("dataset_kwargs") or {}) if config.get("dataset") == "folder" else {}
    prep = Preprocess((h, w), c, **{k: kw[k] for k in FOLDER_READ_KEYS if k in kw})
    return read_image(path, prep).float() / 255


def test_set(config: dict, dataset: str | None = None, data_dir: str | None = None):
    """The test split a run is evaluated on: `dataset` (default the run's own), read with
    the run's dataset options when it is the run's dataset."""
    from cnnzoo.data import load_dataset

    name = dataset or config["dataset"]
    kw = dict(config.get("dataset_kwargs") or {}) if name == config["dataset"] else {}
    if name == "folder":  # labels by the run's class names, images at its input size
        kw |= {"classes": config["classes"], "image_size": config["input_size"][1:],
               "channels": config["input_size"][0]}
    return load_dataset(name, split="test", data_dir=data_dir or config.get("data_dir"), **kw)


def check_dataset(ds, config: dict, run_dir) -> None:
    """The test images must have the shape and class count the run was trained on."""
    from cnnzoo.errors import DataError, ShapeError

    want = list(config["input_size"])
    got = list(ds.image_shape)
    if got != want:
        raise ShapeError(
            f"{ds.name} images are {got} [C,H,W] but the run in {run_dir} expects {want}"
        )
    if len(ds.classes) != config["num_classes"]:
        raise DataError(
            f"{ds.name} has {len(ds.classes)} classes but the run in {run_dir} was trained "
            f"for {config['num_classes']}"
        )
