"""The training loop: `train(TrainConfig) -> TrainResult`.

Two halves with a seam between them. `build_parts(cfg)` makes what a run trains with: the
model, the loaders, the optimizer's parameter groups, the loss and the run's description
(config.json). `Trainer(parts).run()` is the loop; a caller can build the parts, or hand
`train()` its own model (pretrained, partly frozen: freeze.py), parameter groups (each
with an `lr_mult`, optionally its own weight_decay) and loss.

One run = one folder (cnnzoo.runs). The loop follows the lectures' recipe for each model
(recipes.py), watches the learning process (monitor.py), checkpoints at every epoch end (and
on SIGINT/SIGTERM, or every `checkpoint_every` steps), resumes bit-exactly on the same
machine, and stops with a clear message on a NaN/inf loss. Under torchrun it trains
data-parallel (distributed.py).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

import cnnzoo
from cnnzoo import runs
from cnnzoo.errors import CheckpointError, CnnzooError
from cnnzoo.models.layers import AuxOutput, main_logits
from cnnzoo.train import checkpoint as ckpt
from cnnzoo.train import distributed as dist
from cnnzoo.train import monitor
from cnnzoo.train.config import TrainConfig
from cnnzoo.train.freeze import frozen_bn_eval
from cnnzoo.train.recipes import FIELDS
from cnnzoo.utils.device import pick_device


class TrainingDiverged(CnnzooError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    run_dir: Path
    epochs_done: int
    step: int
    best_val_acc: float
    best_epoch: int
    last_val_acc: float | None
    test_acc: float | None = None
    train_time: float = 0.0  # seconds in the training loop (validation and saving included)
    stopped: str = "done"  # "done", "interrupted" (SIGINT/SIGTERM) or "time_limit"
    warnings: list[str] = field(default_factory=list)


def train(config: TrainConfig | dict, *, model: nn.Module | None = None,
          param_groups: list[dict] | None = None, loss_fn: Callable | None = None,
          data: tuple | None = None, norm: tuple | None = None, on_epoch=None) -> TrainResult:
    """Train `config.model` on `config.dataset`; see TrainConfig for every knob.

    model: train this network instead of building one (e.g. pretrained, partly frozen);
    `config.model` (+ `model_kwargs`) must name its architecture, so that the run folder
    rebuilds it. param_groups: optimizer groups over its parameters, each with an optional
    `lr_mult` (a factor of the schedule's lr) and weight_decay. loss_fn(output, y) -> loss.
    data: (train, val) datasets instead of `config.dataset`'s split (a class subset, images
    resized for a source network; config.json still names config.dataset). norm: (mean,
    std) instead of the training images' (a transferred body expects its source's).
    on_epoch(record, model): called on rank 0 after each epoch's checkpoint, outside the
    timed part (benchmarks use it to test the model as it learns).
    """
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    cfg.check()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    d = dist.setup(device.type)
    try:
        device = dist.device_for(d, device)
        parts = dist.agree(d, device, lambda: build_parts(
            cfg, model=model, param_groups=param_groups, loss_fn=loss_fn, data=data, norm=norm,
            d=d, device=device))
        return Trainer(parts, on_epoch).run()
    finally:
        dist.teardown(d)


# --- learning-rate schedules: a pure function of progress, so the state is a few numbers --

def lr_factor(cfg: TrainConfig, t: float, plateau_scale: float) -> float:
    """Multiplier of cfg.lr at `t` epochs of progress (fractional)."""
    e, total = int(t), cfg.epochs
    s = cfg.schedule
    if s == "step":
        f = cfg.gamma ** (sum(e >= m for m in cfg.milestones) if cfg.milestones
                          else e // max(1, cfg.step_size))
    elif s == "plateau":
        f = plateau_scale
    elif s == "cosine":
        f = 0.5 * (1 + math.cos(math.pi * min(t / total, 1.0)))
    elif s == "linear":
        f = max(0.0, 1 - t / total)
    elif s == "onecycle":  # Smith & Topin 2019: cosine up for 30%, then down to 1/25e4
        p, lo, end = min(t / total, 1.0), 1 / 25, 1 / 25e4
        f = (lo + (1 - lo) * (1 - math.cos(math.pi * p / 0.3)) / 2 if p < 0.3
             else end + (1 - end) * (1 + math.cos(math.pi * (p - 0.3) / 0.7)) / 2)
    else:  # constant
        f = 1.0
    if cfg.warmup and t < cfg.warmup:
        f *= max(t / cfg.warmup, 1e-3)
    return f


def build_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    """The recipe's optimizer; `params` may be groups, whose own keys (weight_decay,
    lr_mult ...) override the recipe's."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                               nesterov=bool(cfg.nesterov) and cfg.momentum > 0,
                               weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    # Inception-v3: RMSProp with decay 0.9 and epsilon 1.0 (Szegedy et al. 2016, sec. 8)
    return torch.optim.RMSprop(params, lr=cfg.lr, alpha=0.9, eps=1.0, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)


def model_kwargs(cfg: TrainConfig, user_dropout: bool, info, image_hw) -> dict:
    """Builder knobs: the user's, plus small_input / dropout / aux heads from the recipe."""
    knobs, kw = set(info.knobs), dict(cfg.model_kwargs)
    if "small_input" in knobs and "small_input" not in kw:
        kw["small_input"] = max(image_hw) < info.input_size[1]
    if cfg.dropout is not None:
        name = next((k for k in ("dropout", "drop_rate") if k in knobs), None)
        if name and name not in kw:
            kw[name] = cfg.dropout
        elif name is None and user_dropout:
            raise CnnzooError(f"--dropout: {cfg.model} has no dropout layer "
                              f"(its knobs: {', '.join(sorted(knobs)) or 'none'})")
    if "aux_logits" in knobs and "aux_logits" not in kw:
        kw["aux_logits"] = bool(cfg.aux_weight)
    return kw


# --- a run's parts ------------------------------------------------------------------------

@dataclass
class RunParts:
    """What the loop trains with. `build_parts` makes them from a TrainConfig."""

    cfg: TrainConfig  # resolved: every recipe field set
    model: nn.Module  # on `device`, in its memory format
    train_loader: object
    val_loader: object
    param_groups: list[dict]  # {"params": [...], "lr_mult": float, ...}; no frozen params
    loss_fn: Callable  # (model output, y) -> scalar loss
    run_config: dict  # config.json (cnnzoo.runs.CONFIG_KEYS)
    out: Path
    d: dist.Dist
    device: torch.device
    probe: torch.Tensor | None = None  # fixed normalised batch: activation statistics
    test_loader: object | None = None  # with eval_test
    channels_last: bool = False


def recipe_loss(cfg: TrainConfig) -> Callable:
    """Cross-entropy with the recipe's label smoothing; auxiliary heads weighted by
    aux_weight (GoogLeNet / Inception-v3 in training mode)."""
    ls = cfg.label_smoothing

    def loss_fn(out, y):
        loss = F.cross_entropy(main_logits(out), y, label_smoothing=ls)
        if isinstance(out, AuxOutput):
            for a in out.aux:
                loss = loss + cfg.aux_weight * F.cross_entropy(a, y, label_smoothing=ls)
        return loss
    return loss_fn


def resume_config(cfg: TrainConfig, out: Path) -> tuple[TrainConfig, dict | None]:
    """With --resume, the saved config (and the saved model knobs); recipe values given
    again (e.g. a lower --lr, a larger --epochs, as AlexNet's authors cut the lr by hand)
    apply from here on."""
    if not runs.is_run(out):
        if (out / ckpt.STATE).exists():
            raise CheckpointError(f"{out / runs.CONFIG}: missing")
        return cfg, None
    if not cfg.resume:
        raise CheckpointError(f"--out {out}: already holds a run; pass --resume to "
                              "continue it, or choose another --out")
    run_config = runs.read_config(out)
    saved = TrainConfig.from_dict(run_config.get("train") or {}, str(out / runs.CONFIG))
    # what defines the run cannot change; a different --seed would reshuffle the data
    fixed = ("model", "dataset", "optimizer") + (("seed",) if cfg.seed != 0 else ())
    for k in fixed:
        if getattr(cfg, k) not in (None, getattr(saved, k)):
            raise CheckpointError(f"--resume: {out} trained {k} {getattr(saved, k)!r},"
                                  f" not {getattr(cfg, k)!r}")
    # runtime knobs: the resumed process may run them differently
    keep = ("resume", "device", "threads", "progress", "time_limit", "tensorboard",
            "eval_test", "data_dir", "amp", "compile", "sync_bn")
    if cfg.channels_last is not None:
        keep += ("channels_last",)
    over = {k: getattr(cfg, k) for k in keep}
    over |= {k: getattr(cfg, k) for k in FIELDS if getattr(cfg, k) is not None}
    return dataclasses.replace(saved, **over), run_config.get("model_kwargs") or {}


def build_parts(cfg: TrainConfig | dict, *, model: nn.Module | None = None,
                param_groups: list[dict] | None = None, loss_fn: Callable | None = None,
                data: tuple | None = None, norm: tuple | None = None,
                d: dist.Dist | None = None, device: torch.device | None = None) -> RunParts:
    """Dataset, model, loaders, parameter groups, loss and config.json of a run; see
    `train` for `model`, `param_groups`, `loss_fn`, `data` and `norm`. Nothing is written
    yet."""
    from cnnzoo.analysis import check_input
    from cnnzoo.data import build_augment, build_loader, load_dataset
    from cnnzoo.data.datasets import folder_has_test_split
    from cnnzoo.models.registry import UnknownModelError, create_model, model_info

    cfg = cfg if isinstance(cfg, TrainConfig) else TrainConfig.from_dict(cfg)
    cfg.check()
    d = d or dist.Dist()
    device = device or pick_device(cfg.device)
    if param_groups is not None and model is None:
        raise CnnzooError("param_groups: give the model they belong to (model=...)")
    out = Path(cfg.out or f"runs/{cfg.model}_{cfg.dataset}")
    cfg, saved_kw = resume_config(cfg, out)
    try:
        info = model_info(cfg.model)
    except UnknownModelError as e:
        raise CnnzooError(str(e)) from None

    if cfg.dataset == "folder":  # a user's photos, decoded at the model's input size
        cfg = dataclasses.replace(cfg, dataset_kwargs={
            "image_size": list(info.input_size[1:]), "channels": info.input_size[0],
            **cfg.dataset_kwargs})
        if cfg.eval_test and not folder_has_test_split(cfg.data_dir):
            raise CnnzooError(f"--eval-test: {cfg.data_dir} has no train/ and test/ (or "
                              "val/) folders, so there is no test split to report")
    full = data[0] if data is not None else load_dataset(
        cfg.dataset, "train", data_dir=cfg.data_dir, **cfg.dataset_kwargs)
    c, h, w = full.image_shape
    user_dropout = cfg.dropout is not None
    cfg = cfg.resolved(info.recipe, small=max(h, w) <= 64)
    if cfg.batch_size % d.world_size:
        raise CnnzooError(f"--batch-size {cfg.batch_size} must divide evenly over "
                          f"{d.world_size} processes")
    train_ds, val_ds = data if data is not None else full.split(cfg.val_fraction, seed=cfg.seed)
    mean, std = (list(norm[0]), list(norm[1])) if norm is not None else train_ds.channel_stats()

    torch.manual_seed(cfg.seed)  # the same initial weights on every rank and every run
    if model is None:
        kw = saved_kw if saved_kw is not None else model_kwargs(cfg, user_dropout, info, (h, w))
        try:
            model = create_model(cfg.model, num_classes=full.num_classes, in_chans=c, **kw)
        except TypeError as e:
            raise CnnzooError(f"{cfg.model}: {e}") from None
    else:  # the caller's network: config.json must rebuild exactly it
        kw = saved_kw if saved_kw is not None else dict(cfg.model_kwargs)
        _check_rebuilds(model, cfg.model, full.num_classes, c, kw)
    check_input(model, (c, h, w))  # a model that cannot take these images fails here
    channels_last = (cfg.channels_last if cfg.channels_last is not None
                     else device.type != "mps")  # NHWC: +25% for LeNet-5 on CPU
    fmt = torch.channels_last if channels_last else torch.preserve_format
    model = model.to(device, memory_format=fmt)
    if cfg.sync_bn:
        model = dist.sync_batchnorm(model, d, device)
    groups = _param_groups(model, param_groups)

    run_config = {
        "model": cfg.model, "model_kwargs": kw, "num_classes": full.num_classes,
        "in_chans": c, "input_size": [c, h, w], "dataset": cfg.dataset,
        "data_dir": cfg.data_dir, "dataset_kwargs": cfg.dataset_kwargs,
        "classes": full.classes, "mean": mean, "std": std,
        "train": cfg.to_dict(), "cnnzoo_version": cnnzoo.__version__}

    augment = build_augment(cfg.augment, image_size=(h, w), channels=c,
                            pca_from=train_ds if "pca" in (cfg.augment or "") else None)
    # The prefetch thread overlaps batch preparation with a GPU step, or uses a spare
    # core; on a CPU whose cores all run the step it only takes them from it (measured,
    # BENCHMARKS.md: LeNet-5 steps 9.0 ms inline vs 11.9 ms with it, ResNet-20 equal).
    prefetch = device.type != "cpu" or torch.get_num_threads() < (os.cpu_count() or 1)
    common = dict(mean=mean, std=std, device=device, rank=d.rank, world_size=d.world_size,
                  channels_last=channels_last, prefetch=prefetch)
    train_loader = build_loader(train_ds, cfg.batch_size // d.world_size, shuffle=True,
                                augment=augment, seed=cfg.seed, drop_last=True, **common)
    val_loader = build_loader(val_ds, 512, shuffle=False, **common)
    if len(train_loader) == 0:
        raise CnnzooError(f"--batch-size {cfg.batch_size} is larger than the "
                          f"{len(train_ds)} training images")
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    probe = ((val_ds.sample_images(256, seed=cfg.seed).float() / 255 - m) / s).to(device)
    test_loader = None
    if cfg.eval_test:
        test_kw = dict(cfg.dataset_kwargs)
        if cfg.dataset == "folder":
            test_kw["classes"] = full.classes  # the test folders get the training labels
        test = load_dataset(cfg.dataset, "test", data_dir=cfg.data_dir, **test_kw)
        test_loader = build_loader(test, 512, shuffle=False, **common)
    return RunParts(cfg, model, train_loader, val_loader, groups,
                    loss_fn or recipe_loss(cfg), run_config, out, d, device, probe,
                    test_loader, channels_last)


def _check_rebuilds(model: nn.Module, name: str, num_classes: int, in_chans: int,
                    kw: dict) -> None:
    """The run folder rebuilds `model` from (name, num_classes, in_chans, kw): check on
    meta tensors that this gives the same parameters and buffers, names and shapes."""
    from cnnzoo.models.registry import create_model

    try:
        with torch.device("meta"):
            ref = create_model(name, num_classes=num_classes, in_chans=in_chans, **kw)
    except TypeError as e:
        raise CnnzooError(f"{name}: {e}") from None
    want = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if want != got:
        diff = sorted(set(want) ^ set(got)) or [k for k in want if want[k] != got[k]]
        k = diff[0]
        raise CnnzooError(
            f"model: not the {name} that model='{name}', model_kwargs={kw} rebuilds for "
            f"{num_classes} classes and {in_chans} channels, so the run folder could not "
            f"load it back (first difference: {k} {got.get(k)} vs {want.get(k)})")


def _param_groups(model: nn.Module, groups: list[dict] | None) -> list[dict]:
    """The optimizer's groups: frozen parameters (requires_grad=False) left out."""
    if groups is None:
        groups = [{"params": list(model.parameters())}]
    own = {id(p) for p in model.parameters()}
    out = []
    for i, g in enumerate(groups):
        if not isinstance(g, dict) or "params" not in g:
            raise CnnzooError(f"param_groups[{i}]: must be a dict with 'params'")
        if "lr" in g:
            raise CnnzooError(f"param_groups[{i}]: give 'lr_mult' (a factor of the run's "
                              "lr, which the schedule changes), not 'lr'")
        params = list(g["params"])
        if any(id(p) not in own for p in params):
            raise CnnzooError(f"param_groups[{i}]: holds tensors that are not parameters "
                              "of the model")
        params = [p for p in params if p.requires_grad]
        if params:
            out.append({**g, "params": params, "lr_mult": float(g.get("lr_mult", 1.0))})
    if not out:
        raise CnnzooError("nothing to train: every parameter is frozen")
    return out


# --- the loop -----------------------------------------------------------------------------

class _Stop:
    """SIGINT/SIGTERM set a flag; the loop saves a checkpoint at the next step and exits."""

    def __init__(self):
        self.signum, self._old = None, {}
        self.saving = False  # a second Ctrl-C must not tear a checkpoint write

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, _frame):
        if self.signum is not None and not self.saving:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


@dataclass
class _Pending:
    """A step whose loss and accuracy are still on the device."""

    step: int
    batch: int
    lr: float
    n: int
    time: float
    values: torch.Tensor  # [loss, correct]


class Trainer:
    def __init__(self, parts: RunParts, on_epoch=None):
        self.parts, self.cfg, self.on_epoch = parts, parts.cfg, on_epoch
        self.d, self.device, self.out = parts.d, parts.device, parts.out
        self.model, self.loss_fn = parts.model, parts.loss_fn
        self.loader, self.val_loader = parts.train_loader, parts.val_loader
        self.run_config = parts.run_config
        cfg, device = self.cfg, self.device
        if cfg.eval_test and parts.test_loader is None:
            raise CnnzooError("--eval-test: these run parts have no test_loader")
        if cfg.resume and self.d.enabled:
            self._same_resume_point()
        self.net = dist.wrap(self.model, self.d, device)
        if cfg.compile:
            self.net = torch.compile(self.net)
        self.opt = build_optimizer(cfg, parts.param_groups)

        self.amp_dtype = None
        if cfg.amp:
            bf16 = device.type != "cuda" or torch.cuda.is_bf16_supported()
            self.amp_dtype = torch.bfloat16 if bf16 else torch.float16
            if device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
                # bf16 without AVX-512-bf16/AMX is emulated: 5-10x slower measured (AVX2 EPYC)
                self._say("warning: --amp on a CPU without native bfloat16 runs much slower "
                          "than float32; drop --amp here")
        self.scaler = torch.amp.GradScaler(enabled=self.amp_dtype == torch.float16)

        # Loop state: everything here goes into the checkpoint.
        self.state = dict(epoch=0, batch=0, step=0, best_val_acc=-1.0, best_epoch=0,
                          plateau_best=-1.0, plateau_bad=0, plateau_scale=1.0,
                          train_time=0.0, sums=[0.0, 0.0, 0.0], last_val_acc=None)
        self.saved_step = 0  # the last checkpoint's step (a NaN stop names it)
        self.warned: set[str] = set()
        self.warnings: list[str] = []
        self._stop = _Stop()
        if self.d.is_main:
            self._prepare_folder()
        else:  # rank 0 prepares it; agree() makes this rank stop too if it cannot
            dist.agree(self.d, device, lambda: None)
        if cfg.resume and (self.out / ckpt.STATE).exists():
            self._load()
        elif cfg.resume and self.d.is_main:  # killed before its first checkpoint: afresh
            runs.truncate_metrics(self.out / runs.METRICS, 0)
        self.log = runs.MetricsLog(self.out / runs.METRICS, enabled=self.d.is_main)
        self.tb = None
        if cfg.tensorboard and self.d.is_main:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise CnnzooError("--tensorboard needs the tensorboard package "
                                  "(pip install 'cnnzoo[tensorboard]')") from None
            self.tb = SummaryWriter(str(self.out / "tensorboard"))

    # --- the run folder --------------------------------------------------------------------

    def _same_resume_point(self) -> None:
        """Every rank must resume from the same checkpoint. Each reads --out on its own
        machine, which may hold no copy of rank 0's run, or another one: checked before
        anything is written, so every rank stops with the same error."""
        def step_on_disk() -> float:
            if not (self.out / ckpt.STATE).exists():
                return -1.0
            try:
                return float(json.loads((self.out / ckpt.STATE_JSON).read_text())["step"])
            except (OSError, ValueError, KeyError, TypeError):
                return -2.0

        seen = dist.each_rank(self.d, step_on_disk(), self.device)
        if len(set(seen)) > 1:
            def what(v):
                return {-1.0: "no checkpoint", -2.0: f"no readable {ckpt.STATE_JSON}"}.get(
                    v, f"a checkpoint at step {v:.0f}")
            r = next(i for i, v in enumerate(seen) if v != seen[0])
            raise CheckpointError(
                f"--resume: rank {r} finds {what(seen[r])} in its --out, rank 0 "
                f"{what(seen[0])}; on several machines --out must be one shared folder "
                "(or the same copy on each)")

    def _prepare_folder(self) -> None:
        def prepare():
            n = sum(p.numel() * p.element_size() for p in self.model.parameters())
            runs.prepare_run_dir(self.out, need_bytes=6 * n + (16 << 20))
            runs.write_config(self.out, self.run_config)
        dist.agree(self.d, self.device, prepare)

    def _save(self, best: bool = False) -> None:
        if self.d.is_main:
            self._stop.saving = True
            try:
                ckpt.save_checkpoint(self.out, self.model.state_dict(), self.opt, self.state,
                                     best=best, run_config=self.run_config)
            finally:
                self._stop.saving = False
        self.saved_step = self.state["step"]
        dist.barrier(self.d)

    def _load(self) -> None:
        model_sd, tensors, state = ckpt.load_checkpoint(self.out)
        # hyper-parameters as configured now, group by group (a resume may change them);
        # the optimizer's state as saved
        now = [{k: v for k, v in g.items() if k != "params"} for g in self.opt.param_groups]
        try:
            self.model.load_state_dict(model_sd)
            ckpt.load_optimizer_state(self.opt, tensors, state.pop("optimizer"))
        except (RuntimeError, ValueError, KeyError) as e:
            raise CheckpointError(f"{self.out / ckpt.STATE}: does not fit this run ({e})") from None
        for g, hyper in zip(self.opt.param_groups, now):
            g.update(hyper)
        ckpt.set_rng_state(tensors, state.pop("rng"))
        self.state.update(state)
        self.saved_step = self.state["step"]
        if self.d.is_main:
            runs.truncate_metrics(self.out / runs.METRICS, self.state["step"])

    # --- one step, one epoch -----------------------------------------------------------------

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.bfloat16,
                              enabled=self.amp_dtype is not None)

    def _train_mode(self) -> None:
        self.model.train()
        frozen_bn_eval(self.model)  # frozen BatchNorm keeps its statistics

    @torch.inference_mode()
    def evaluate(self, loader) -> tuple[float, float]:
        """(mean loss, accuracy) over a loader, summed across ranks."""
        self.model.eval()
        loss = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        n = 0
        for x, y in loader:
            with self._autocast():
                logits = self.model(x)
            loss += F.cross_entropy(logits.float(), y, reduction="sum")
            correct += (logits.argmax(1) == y).sum()
            n += len(y)
        self._train_mode()
        loss_sum, c, n = dist.all_reduce_sum(self.d, [loss.item(), correct.item(), n],
                                             self.device)
        return loss_sum / max(n, 1), c / max(n, 1)

    def _set_lr(self, t: float) -> float:
        """The schedule's lr at `t` epochs; each group gets it times its lr_mult."""
        lr = self.cfg.lr * lr_factor(self.cfg, t, self.state["plateau_scale"])
        for g in self.opt.param_groups:
            g["lr"] = lr * g.get("lr_mult", 1.0)
        return lr

    def run(self) -> TrainResult:
        cfg, st = self.cfg, self.state
        n = len(self.loader)
        stopped = "done"
        self._train_mode()
        with warnings.catch_warnings():
            self._showwarning, warnings.showwarning = warnings.showwarning, self._show_warning
            with _Stop() as stop:
                self._stop = stop
                while st["epoch"] < cfg.epochs and stopped == "done":
                    stopped = self._epoch(n, stop)
            self.log.close()
            if self.tb is not None:
                self.tb.close()
            res = TrainResult(self.out, st["epoch"], st["step"], st["best_val_acc"],
                              st["best_epoch"], st["last_val_acc"],
                              train_time=st["train_time"], stopped=stopped,
                              warnings=self.warnings)
            # a time limit is a budget ("the best in 60 minutes"): test what it reached
            if cfg.eval_test and stopped != "interrupted" and st["best_epoch"]:
                res.test_acc = self.test_accuracy()
        return res

    def _epoch(self, n: int, stop: _Stop) -> str:
        cfg, st, d = self.cfg, self.state, self.d
        epoch, start = st["epoch"], st["batch"]
        self.loader.set_epoch(epoch)
        t0, wait0 = time.perf_counter(), self.loader.wait_time
        time_base = st["train_time"]
        self.sums = list(st["sums"])  # loss*n, correct, n (host floats: exact sums)
        ratio = monitor.UpdateRatio(self.model) if cfg.monitor else None
        measure_at = n - 1  # one step per epoch: the update/weight ratio and grad norms
        ratios, grads = {}, {}
        bar = self._bar(n, start, epoch)
        lr = self._set_lr(epoch + start / n)
        pending: list[_Pending] = []
        for i, (x, y) in enumerate(itertools.islice(self.loader, start, None), start):
            lr = self._set_lr(epoch + i / n)
            with self._autocast():
                out = self.net(x)
                loss = self.loss_fn(out, y)
            if ratio is not None and i == measure_at:
                ratio.snapshot()
            self.opt.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if cfg.clip_grad:
                self.scaler.unscale_(self.opt)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_grad)
            if ratio is not None and i == measure_at:
                grads = ratio.grad_norms()
            self.scaler.step(self.opt)
            self.scaler.update()
            if ratio is not None and i == measure_at:
                ratios = ratio.ratios()
            st["step"] += 1
            st["batch"] = i + 1
            st["train_time"] = now = time_base + time.perf_counter() - t0
            with torch.no_grad():  # stays on the device until the next sync
                hits = (main_logits(out).argmax(1) == y).sum()
                pending.append(_Pending(st["step"], i, lr, len(y), now, torch.stack(
                    [loss.detach().float(), hits.float()])))
            if bar is not None:
                bar.update(1)
            stop_now = stop.signum is not None
            over_time = cfg.time_limit is not None and now >= cfg.time_limit
            mid = cfg.checkpoint_every and st["step"] % cfg.checkpoint_every == 0
            # Losses reach the host (a device sync) only at log steps, before a checkpoint,
            # and when this process must stop; under DDP the ranks agree there (and only
            # there: the same steps on every rank) on stopping.
            if not (st["step"] % cfg.log_every == 0 or mid
                    or (not d.enabled and (stop_now or over_time))):
                continue
            stop_now, over_time = self._sync(pending, epoch, n, stop_now, over_time, bar, t0)
            if (stop_now or over_time or mid) and i + 1 < n:
                st["sums"] = list(self.sums)
                self._save()
                if stop_now or over_time:
                    if bar is not None:
                        bar.close()
                    why = "interrupted" if stop_now else "time_limit"
                    self._say(f"{why}: checkpoint saved at step {st['step']} (epoch "
                              f"{epoch + 1}, batch {i + 1}/{n}) in {self.out}; continue "
                              "with --resume")
                    return why
        self._sync(pending, epoch, n, False, False, bar, t0)  # every rank, every epoch
        if bar is not None:
            bar.close()
        self._end_epoch(epoch, lr, ratios, grads, t0, time_base, wait0)
        over_time = cfg.time_limit is not None and st["train_time"] >= cfg.time_limit
        stop_now, over_time = dist.any_rank(d, [stop.signum is not None, over_time],
                                            self.device)
        if stop_now or over_time:
            return "interrupted" if stop_now else "time_limit"
        return "done"

    def _sync(self, pending: list[_Pending], epoch: int, n: int, stop_now: bool,
              over_time: bool, bar, t0: float) -> tuple[bool, bool]:
        """Read the pending steps' losses (one device sync), log them, add them to the
        epoch's sums, and stop on a NaN/inf loss: every rank at the same step, and before
        its update can be saved. Returns (stop_now, over_time) as the ranks agree."""
        values = torch.stack([p.values for p in pending]).tolist() if pending else []
        bad = None
        for p, (loss_v, hits) in zip(pending, values):
            if not math.isfinite(loss_v):
                bad = (p, loss_v)
                break
            self.sums[0] += loss_v * p.n
            self.sums[1] += hits
            self.sums[2] += p.n
            if p.step % self.cfg.log_every == 0:
                self._log({"kind": "step", "step": p.step, "epoch": epoch + (p.batch + 1) / n,
                           "loss": loss_v, "lr": p.lr, "time": p.time})
        pending.clear()
        any_bad, stop_now, over_time = dist.any_rank(
            self.d, [bad is not None, stop_now, over_time], self.device)
        if any_bad:
            kept = (f"The last good checkpoint (step {self.saved_step}) is kept in "
                    f"{self.out}" if self.saved_step else "No checkpoint was saved yet")
            if bad is None:
                where = f"on another rank by step {self.state['step']} (epoch {epoch + 1})"
                raise TrainingDiverged(f"loss is not finite {where}; training stopped. "
                                       f"{kept}; try a lower --lr")
            p, loss_v = bad
            raise TrainingDiverged(
                f"loss is {loss_v} at step {p.step} (epoch {epoch + 1}, batch "
                f"{p.batch + 1}/{n}, lr {p.lr:.3g}); training stopped. {kept}; try a lower "
                "--lr")
        if bar is not None and values:
            bar.set_postfix(loss=f"{values[-1][0]:.3f}", acc=f"{self.sums[1] / self.sums[2]:.3f}",
                            img_s=f"{self.sums[2] / (time.perf_counter() - t0):.0f}")
        return stop_now, over_time

    def _end_epoch(self, epoch, lr, ratios, grads, t0, time_base, wait0) -> None:
        cfg, st = self.cfg, self.state
        steps_time = time.perf_counter() - t0  # the training steps alone (images/s)
        loss_sum, correct, seen = dist.all_reduce_sum(self.d, self.sums, self.device)
        val_loss, val_acc = self.evaluate(self.val_loader)
        # The last step of an epoch can break the weights after its loss was checked: never
        # save (or call "best") a model whose outputs are no longer finite.
        if not math.isfinite(val_loss):
            kept = (f"the last good checkpoint (step {self.saved_step}) is kept in {self.out}"
                    if self.saved_step else "no checkpoint was saved yet")
            raise TrainingDiverged(
                f"validation loss is {val_loss} after step {st['step']} (end of epoch "
                f"{epoch + 1}, lr {lr:.3g}); training stopped, {kept}; try a lower --lr")
        if val_acc > st["plateau_best"] + 1e-4:
            st["plateau_best"], st["plateau_bad"] = val_acc, 0
        else:
            st["plateau_bad"] += 1
            if cfg.schedule == "plateau" and st["plateau_bad"] > cfg.patience:
                st["plateau_scale"] *= cfg.gamma  # "divided by 10 when val accuracy plateaus"
                st["plateau_bad"] = 0
        best = val_acc > st["best_val_acc"]
        if best:
            st["best_val_acc"], st["best_epoch"] = val_acc, epoch + 1
        st["last_val_acc"] = val_acc
        st.update(epoch=epoch + 1, batch=0, sums=[0.0, 0.0, 0.0])
        rec = {"kind": "epoch", "epoch": epoch + 1, "step": st["step"],
               "train_loss": loss_sum / seen, "train_acc": correct / seen,
               "val_loss": val_loss, "val_acc": val_acc, "lr": lr,
               "epoch_time": time.perf_counter() - t0,
               "images_per_s": self.sums[2] / steps_time,  # this rank's
               "data_wait": self.loader.wait_time - wait0}
        if cfg.monitor and self.d.is_main:
            probe = self.parts.probe
            var, zeros = ({}, {}) if probe is None else monitor.activation_stats(self.model,
                                                                                probe)
            warn = monitor.health_warnings(ratios, var, zeros, annealing=lr < 0.1 * cfg.lr)
            rec.update(update_ratio=ratios, grad_norm=grads, act_var=var, dead_fraction=zeros,
                       warnings=[m for _, m in warn])
            for key, msg in warn:  # each layer's problem printed once per run
                if key not in self.warned:
                    self.warned.add(key)
                    self.warnings.append(msg)
                    self._say(f"warning (epoch {epoch + 1}): {msg}")
            monitor.save_first_filters(
                self.model, self.out / runs.FILTERS / f"epoch_{epoch + 1:03d}.png",
                f"{cfg.model} conv1, epoch {epoch + 1}")
        st["train_time"] = time_base + time.perf_counter() - t0
        rec["time"] = st["train_time"]
        self._log(rec)
        self._save(best=best)
        self._say(f"epoch {epoch + 1}/{cfg.epochs}  loss {rec['train_loss']:.4f}  "
                  f"train {rec['train_acc']:.2%}  val {val_acc:.2%}  lr {lr:.3g}  "
                  f"{rec['images_per_s']:.0f} img/s  {st['train_time']:.1f}s")
        if self.on_epoch is not None and self.d.is_main:
            self.on_epoch(rec, self.model)
            self._train_mode()

    # --- output ------------------------------------------------------------------------------

    def _log(self, rec: dict) -> None:
        self.log.write(rec)
        if self.tb is not None:
            for k, v in rec.items():
                if isinstance(v, (int, float)) and k not in ("step", "kind"):
                    self.tb.add_scalar(f"{rec['kind']}/{k}", v, rec["step"])

    def _say(self, msg: str) -> None:
        if self.d.is_main:
            print(msg, file=sys.stderr, flush=True)

    _SKIPPED = "skipped unreadable image "

    def _show_warning(self, message, category, filename, lineno, file=None, line=None):
        """A loader's skipped image as one plain line, like the trainer's own warnings (not
        Python's `file:line: UserWarning:` form); other warnings as before."""
        text = str(message)
        if not text.startswith(self._SKIPPED):
            return self._showwarning(message, category, filename, lineno, file, line)
        path, why = _split_path(text[len(self._SKIPPED):], self._sample_paths())
        print(f"warning: {self._SKIPPED}{path}" + (f" ({why})" if why else ""),
              file=sys.stderr, flush=True)

    def _sample_paths(self) -> set[str]:
        if not hasattr(self, "_paths"):
            loaders = (self.loader, self.val_loader, self.parts.test_loader)
            self._paths = {str(p) for ld in loaders
                           for p, _ in getattr(getattr(ld, "dataset", None), "samples", ())}
        return self._paths

    def _bar(self, n: int, start: int, epoch: int):
        show = self.cfg.progress if self.cfg.progress is not None else sys.stderr.isatty()
        if not show or not self.d.is_main:
            return None
        from tqdm import tqdm

        return tqdm(total=n, initial=start, desc=f"epoch {epoch + 1}/{self.cfg.epochs}",
                    unit="batch", leave=False, dynamic_ncols=True)

    def test_accuracy(self) -> float:
        """Accuracy of the best weights on the test split (written as a "test" record)."""
        def load():
            if self.d.is_main:  # the only rank that wrote it: the others get it from rank 0
                self.model.load_state_dict(runs.read_weights(self.out / runs.BEST))
        dist.agree(self.d, self.device, load)
        dist.broadcast_module(self.d, self.model)
        _, acc = self.evaluate(self.parts.test_loader)
        if self.d.is_main:
            log = runs.MetricsLog(self.out / runs.METRICS)
            log.write({"kind": "test", "step": self.state["step"], "test_acc": acc})
            log.close()
        return acc


def _split_path(text: str, paths: set[str]) -> tuple[str, str]:
    """("PATH", "reason") of a loader's "PATH: reason": split where the left side is one of
    the dataset's files (a path may hold ': ' itself), else at the first ': '."""
    i = text.find(": ")
    while i >= 0:
        if text[:i] in paths:
            return text[:i], text[i + 2:]
        i = text.find(": ", i + 1)
    path, _, why = text.partition(": ")
    return path, why
