"""TrainConfig: every knob of a run, JSON-able; recipe fields left None come from the recipe.

Precedence: explicit field (CLI flag) > --config file > the model's recipe (recipes.py).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from cnnzoo.errors import CnnzooError
from cnnzoo.train.recipes import FIELDS, recipe_for

OPTIMIZERS = ("sgd", "adamw", "rmsprop")
SCHEDULES = ("step", "plateau", "cosine", "onecycle", "linear", "constant")


@dataclass
class TrainConfig:
    model: str
    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    dataset_kwargs: dict = field(default_factory=dict)  # e.g. synthetic num_samples/size
    model_kwargs: dict = field(default_factory=dict)  # builder knobs
    # Recipe fields: None = the model's recipe (see recipes.py).
    epochs: int | None = None
    batch_size: int | None = None  # the global batch (split across DDP ranks)
    lr: float | None = None
    optimizer: str | None = None
    momentum: float | None = None
    nesterov: bool | None = None
    weight_decay: float | None = None
    schedule: str | None = None
    warmup: float | None = None  # epochs of linear warm-up
    step_size: int | None = None  # "step": every step_size epochs times gamma ...
    gamma: float | None = None
    milestones: list[int] | None = None  # ... or at these epochs
    patience: int | None = None  # "plateau": epochs without val-acc gain before lr *= gamma
    label_smoothing: float | None = None
    dropout: float | None = None
    aux_weight: float | None = None
    augment: str | None = None
    clip_grad: float | None = None
    # Runtime.
    val_fraction: float = 0.1
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    channels_last: bool | None = None  # None: on except on MPS (measured faster on CPU)
    compile: bool = False
    sync_bn: bool = False  # DDP: BatchNorm statistics over the global batch (CUDA only)
    threads: int | None = None  # torch.set_num_threads; None leaves torch's default
    out: str | None = None  # default runs/<model>_<dataset>
    resume: bool = False
    checkpoint_every: int = 0  # also save every N steps mid-epoch (0: at epoch ends only)
    log_every: int = 20  # a "step" record in metrics.jsonl every N steps
    monitor: bool = True  # update ratios, activation variance, grad norms, filter PNGs
    tensorboard: bool = False
    progress: bool | None = None  # None: a tqdm bar when stderr is a TTY
    eval_test: bool = False  # evaluate the best weights on the test split at the end
    time_limit: float | None = None  # seconds of training; stop (with a checkpoint) after

    def resolved(self, recipe_key: str, small: bool) -> TrainConfig:
        """A copy with every recipe field filled from the recipe, then checked."""
        rec = recipe_for(recipe_key, small)
        c = dataclasses.replace(self, **{k: rec[k] for k in FIELDS if getattr(self, k) is None})
        c.check()
        return c

    def check(self) -> None:
        def bad(arg, msg):
            raise CnnzooError(f"--{arg.replace('_', '-')}: {msg}")

        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            bad("optimizer", f"must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.schedule is not None and self.schedule not in SCHEDULES:
            bad("schedule", f"must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        for k in ("epochs", "batch_size"):
            v = getattr(self, k)
            if v is not None and (not isinstance(v, int) or v < 1):
                bad(k, f"must be a positive integer, got {v!r}")
        if self.lr is not None and not self.lr > 0:
            bad("lr", f"must be > 0, got {self.lr}")
        if not 0.0 < self.val_fraction < 1.0:
            bad("val_fraction", f"must be in (0, 1), got {self.val_fraction}")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            bad("dropout", f"must be in [0, 1), got {self.dropout}")
        if self.label_smoothing is not None and not 0.0 <= self.label_smoothing < 1.0:
            bad("label_smoothing", f"must be in [0, 1), got {self.label_smoothing}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise CnnzooError(f"{source}: unknown key(s) {', '.join(unknown)} "
                              f"(known: {', '.join(sorted(names))})")
        if "model" not in d:
            raise CnnzooError(f"{source}: no 'model' given")
        return cls(**d)


def read_config_file(path: str | Path) -> dict:
    """A run config as JSON or YAML (safe_load: data only). Keys are TrainConfig fields."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise CnnzooError(f"--config {path}: cannot read ({e.strerror or e})") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            why = " ".join(str(e).split())  # yaml's message spans lines; ours is one
            raise CnnzooError(f"--config {path}: not valid YAML ({why})") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise CnnzooError(f"--config {path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise CnnzooError(f"--config {path}: must hold a mapping of TrainConfig fields")
    return {k.replace("-", "_"): v for k, v in data.items()}
