"""The training loop: `train(TrainConfig) -> TrainResult`.

One run = one folder (checkpoint.py). The loop follows the lectures' recipe for each model
(recipes.py), watches the learning process (monitor.py), checkpoints at every epoch end (and
on SIGINT/SIGTERM, or every `checkpoint_every` steps), resumes bit-exactly on the same
machine, and stops with a clear message on a NaN/inf loss. Under torchrun it trains
data-parallel (distributed.py).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import cnnzoo
from cnnzoo.errors import CheckpointError, CnnzooError
from cnnzoo.models.layers import AuxOutput
from cnnzoo.train import checkpoint as ckpt
from cnnzoo.train import distributed as dist
from cnnzoo.train import monitor
from cnnzoo.train.config import TrainConfig
from cnnzoo.train.recipes import FIELDS
from cnnzoo.utils.device import pick_device
from cnnzoo.utils.io import atomic_write_json


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


def train(config: TrainConfig | dict, *, on_epoch=None) -> TrainResult:
    """Train `config.model` on `config.dataset`; see TrainConfig for every knob.

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
        return Trainer(cfg, d, dist.device_for(d, device), on_epoch).run()
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


class Trainer:
    def __init__(self, cfg: TrainConfig, d: dist.Dist, device: torch.device, on_epoch=None):
        from cnnzoo.data import build_augment, build_loader, load_dataset
        from cnnzoo.data.datasets import folder_has_test_split
        from cnnzoo.models.registry import UnknownModelError, model_info

        self.d, self.device, self.on_epoch = d, device, on_epoch
        self.out = Path(cfg.out or f"runs/{cfg.model}_{cfg.dataset}")
        self.saved_kw = None  # a resumed run rebuilds the model with its saved knobs
        cfg = self._resume_config(cfg)
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
        full = load_dataset(cfg.dataset, "train", data_dir=cfg.data_dir, **cfg.dataset_kwargs)
        c, h, w = full.image_shape
        user_dropout = cfg.dropout is not None
        cfg = cfg.resolved(info.recipe, small=max(h, w) <= 64)
        self.cfg = cfg
        if cfg.batch_size % d.world_size:
            raise CnnzooError(f"--batch-size {cfg.batch_size} must divide evenly over "
                              f"{d.world_size} processes")
        train_ds, val_ds = full.split(cfg.val_fraction, seed=cfg.seed)
        self.mean, self.std = train_ds.channel_stats()
        self.classes, self.input_size = full.classes, [c, h, w]

        torch.manual_seed(cfg.seed)  # the same initial weights on every rank and every run
        self.kw = (self.saved_kw if self.saved_kw is not None
                   else model_kwargs(cfg, user_dropout, info, (h, w)))
        from cnnzoo.models.registry import create_model

        try:
            # input_size: a model that cannot take these images fails here, naming the layer
            model = create_model(cfg.model, num_classes=full.num_classes, in_chans=c,
                                 input_size=(c, h, w), **self.kw)
        except TypeError as e:
            raise CnnzooError(f"{cfg.model}: {e}") from None
        self.channels_last = (cfg.channels_last if cfg.channels_last is not None
                              else device.type != "mps")  # NHWC: +25% for LeNet-5 on CPU
        fmt = torch.channels_last if self.channels_last else torch.preserve_format
        self.model = model.to(device, memory_format=fmt)
        self.net = dist.wrap(self.model, d, device)
        if cfg.compile:
            self.net = torch.compile(self.net)
        self.opt = build_optimizer(cfg, self.model.parameters())
        self.num_classes = full.num_classes
        # config.json, and the metadata of every weights file (so a weights file copied on
        # its own still knows its model, classes and normalisation)
        self.run_config = {
            "model": cfg.model, "model_kwargs": self.kw, "num_classes": self.num_classes,
            "in_chans": c, "input_size": self.input_size, "dataset": cfg.dataset,
            "data_dir": cfg.data_dir, "dataset_kwargs": cfg.dataset_kwargs,
            "classes": self.classes, "mean": self.mean, "std": self.std,
            "train": cfg.to_dict(), "cnnzoo_version": cnnzoo.__version__}

        augment = build_augment(cfg.augment, image_size=(h, w), channels=c,
                                pca_from=train_ds if "pca" in (cfg.augment or "") else None)
        # The prefetch thread overlaps batch preparation with a GPU step, or uses a spare
        # core; on a CPU whose cores all run the step it only takes them from it (measured,
        # BENCHMARKS.md: LeNet-5 steps 9.0 ms inline vs 11.9 ms with it, ResNet-20 equal).
        prefetch = device.type != "cpu" or torch.get_num_threads() < (os.cpu_count() or 1)
        common = dict(mean=self.mean, std=self.std, device=device, rank=d.rank,
                      world_size=d.world_size, channels_last=self.channels_last,
                      prefetch=prefetch)
        self.loader = build_loader(train_ds, cfg.batch_size // d.world_size, shuffle=True,
                                   augment=augment, seed=cfg.seed, drop_last=True, **common)
        self.val_loader = build_loader(val_ds, 512, shuffle=False, **common)
        if len(self.loader) == 0:
            raise CnnzooError(f"--batch-size {cfg.batch_size} is larger than the "
                              f"{len(train_ds)} training images")
        m = torch.tensor(self.mean).view(1, -1, 1, 1)
        s = torch.tensor(self.std).view(1, -1, 1, 1)
        probe = val_ds.sample_images(256, seed=cfg.seed)
        self.probe = ((probe.float() / 255 - m) / s).to(device)

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
        error = None
        if d.is_main:
            try:
                self._prepare_folder()
            except CnnzooError as e:
                error = e
        if dist.any_rank(d, [error is not None], device)[0]:
            raise error or CheckpointError(f"--out {self.out}: rank 0 could not prepare it")
        if cfg.resume and (self.out / ckpt.STATE).exists():
            self._load()
        elif cfg.resume and d.is_main:  # killed before its first checkpoint: start afresh
            ckpt.truncate_metrics(self.out / "metrics.jsonl", 0)
        self.log = ckpt.MetricsLog(self.out / "metrics.jsonl", enabled=d.is_main)
        self.tb = None
        if cfg.tensorboard and d.is_main:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise CnnzooError("--tensorboard needs the tensorboard package "
                                  "(pip install 'cnnzoo[tensorboard]')") from None
            self.tb = SummaryWriter(str(self.out / "tensorboard"))

    # --- the run folder --------------------------------------------------------------------

    def _resume_config(self, cfg: TrainConfig) -> TrainConfig:
        """With --resume, the saved config; recipe values given again (e.g. a lower --lr, a
        larger --epochs, as AlexNet's authors cut the lr by hand) apply from here on."""
        if not (self.out / "config.json").exists():
            if (self.out / ckpt.STATE).exists():
                raise CheckpointError(f"{self.out / 'config.json'}: missing")
            return cfg
        if not cfg.resume:
            raise CheckpointError(f"--out {self.out}: already holds a run; pass --resume to "
                                  "continue it, or choose another --out")
        run_config = ckpt.read_config(self.out)
        saved = TrainConfig.from_dict(run_config["train"], str(self.out / "config.json"))
        self.saved_kw = run_config.get("model_kwargs", {})
        # what defines the run cannot change; a different --seed would reshuffle the data
        fixed = ("model", "dataset", "optimizer") + (("seed",) if cfg.seed != 0 else ())
        for k in fixed:
            if getattr(cfg, k) not in (None, getattr(saved, k)):
                raise CheckpointError(f"--resume: {self.out} trained {k} {getattr(saved, k)!r},"
                                      f" not {getattr(cfg, k)!r}")
        # runtime knobs: the resumed process may run them differently
        keep = ("resume", "device", "threads", "progress", "time_limit", "tensorboard",
                "eval_test", "data_dir", "amp", "compile")
        if cfg.channels_last is not None:
            keep += ("channels_last",)
        over = {k: getattr(cfg, k) for k in keep}
        over |= {k: getattr(cfg, k) for k in FIELDS if getattr(cfg, k) is not None}
        return dataclasses.replace(saved, **over)

    def _prepare_folder(self) -> None:
        n = sum(p.numel() * p.element_size() for p in self.model.parameters())
        ckpt.prepare_out_dir(self.out, need_bytes=6 * n + (16 << 20))
        ckpt.remove_stale_temp_files(self.out)
        atomic_write_json(self.out / "config.json", self.run_config)

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
        try:
            self.model.load_state_dict(model_sd)
            ckpt.load_optimizer_state(self.opt, tensors, state.pop("optimizer"))
            # hyperparameters as configured now (a resume may change them), state as saved
            fresh = build_optimizer(self.cfg, [torch.nn.Parameter(torch.zeros(1))])
            for g in self.opt.param_groups:
                g.update({k: v for k, v in fresh.param_groups[0].items() if k != "params"})
        except (RuntimeError, ValueError, KeyError) as e:
            raise CheckpointError(f"{self.out / ckpt.STATE}: does not fit this run ({e})") from None
        ckpt.set_rng_state(tensors, state.pop("rng"))
        self.state.update(state)
        self.saved_step = self.state["step"]
        if self.d.is_main:
            ckpt.truncate_metrics(self.out / "metrics.jsonl", self.state["step"])

    # --- one step, one epoch -----------------------------------------------------------------

    def _loss(self, out, y):
        ls = self.cfg.label_smoothing
        if isinstance(out, AuxOutput):  # GoogLeNet / Inception-v3 in training mode
            loss = F.cross_entropy(out.logits, y, label_smoothing=ls)
            for a in out.aux:
                loss = loss + self.cfg.aux_weight * F.cross_entropy(a, y, label_smoothing=ls)
            return loss, out.logits
        return F.cross_entropy(out, y, label_smoothing=ls), out

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.bfloat16,
                              enabled=self.amp_dtype is not None)

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
        self.model.train()
        loss_sum, c, n = dist.all_reduce_sum(self.d, [loss.item(), correct.item(), n],
                                             self.device)
        return loss_sum / max(n, 1), c / max(n, 1)

    def _set_lr(self, t: float) -> float:
        lr = self.cfg.lr * lr_factor(self.cfg, t, self.state["plateau_scale"])
        for g in self.opt.param_groups:
            g["lr"] = lr
        return lr

    def run(self) -> TrainResult:
        cfg, st = self.cfg, self.state
        n = len(self.loader)
        stopped = "done"
        self.model.train()
        with _Stop() as stop:
            self._stop = stop
            while st["epoch"] < cfg.epochs and stopped == "done":
                stopped = self._epoch(n, stop)
        self.log.close()
        if self.tb is not None:
            self.tb.close()
        res = TrainResult(self.out, st["epoch"], st["step"], st["best_val_acc"],
                          st["best_epoch"], st["last_val_acc"], train_time=st["train_time"],
                          stopped=stopped, warnings=self.warnings)
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
        sums = torch.tensor(st["sums"], dtype=torch.float64)  # loss*n, correct, n
        ratio = monitor.UpdateRatio(self.model) if cfg.monitor else None
        measure_at = n - 1  # one step per epoch: the update/weight ratio and grad norms
        ratios, grads = {}, {}
        bar = self._bar(n, start, epoch)
        lr = self._set_lr(epoch + start / n)
        for i, (x, y) in enumerate(itertools.islice(self.loader, start, None), start):
            lr = self._set_lr(epoch + i / n)
            with self._autocast():
                loss, logits = self._loss(self.net(x), y)
            loss_v = loss.item()
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
            now = time_base + time.perf_counter() - t0
            # One collective per step: every rank must stop at the same step, or the others
            # wait forever at the next all-reduce. A bad loss's update is never saved.
            bad_loss, stop_now, over_time = dist.any_rank(
                d, [not math.isfinite(loss_v), stop.signum is not None,
                    cfg.time_limit is not None and now >= cfg.time_limit], self.device)
            if bad_loss:
                kept = (f"The last good checkpoint (step {self.saved_step}) is kept in "
                        f"{self.out}" if self.saved_step else "No checkpoint was saved yet")
                raise TrainingDiverged(
                    f"loss is {loss_v} at step {st['step'] + 1} (epoch {epoch + 1}, batch "
                    f"{i + 1}/{n}, lr {lr:.3g}); training stopped. {kept}; try a lower --lr")
            st["step"] += 1
            st["batch"] = i + 1
            with torch.no_grad():
                sums += torch.tensor([loss_v * len(y), float((logits.argmax(1) == y).sum()),
                                      len(y)], dtype=torch.float64)
            st["train_time"] = now
            if bar is not None:
                bar.update(1)
                if i % 10 == 0:
                    bar.set_postfix(loss=f"{loss_v:.3f}", acc=f"{sums[1] / sums[2]:.3f}",
                                    img_s=f"{sums[2] / (time.perf_counter() - t0):.0f}")
            if st["step"] % cfg.log_every == 0:
                self._log({"kind": "step", "step": st["step"], "epoch": epoch + (i + 1) / n,
                           "loss": loss_v, "lr": lr, "time": st["train_time"]})
            mid = cfg.checkpoint_every and st["step"] % cfg.checkpoint_every == 0
            if (stop_now or over_time or mid) and i + 1 < n:
                st["sums"] = sums.tolist()
                self._save()
                if stop_now or over_time:
                    if bar is not None:
                        bar.close()
                    why = "interrupted" if stop_now else "time_limit"
                    self._say(f"{why}: checkpoint saved at step {st['step']} (epoch "
                              f"{epoch + 1}, batch {i + 1}/{n}) in {self.out}; continue "
                              "with --resume")
                    return why
        if bar is not None:
            bar.close()
        self._end_epoch(epoch, sums, lr, ratios, grads, t0, time_base, wait0)
        over_time = cfg.time_limit is not None and st["train_time"] >= cfg.time_limit
        stop_now, over_time = dist.any_rank(d, [stop.signum is not None, over_time],
                                            self.device)
        if stop_now or over_time:
            return "interrupted" if stop_now else "time_limit"
        return "done"

    def _end_epoch(self, epoch, sums, lr, ratios, grads, t0, time_base, wait0) -> None:
        cfg, st = self.cfg, self.state
        steps_time = time.perf_counter() - t0  # the training steps alone (images/s)
        loss_sum, correct, seen = dist.all_reduce_sum(self.d, sums.tolist(), self.device)
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
               "images_per_s": sums[2].item() / steps_time,  # this rank's
               "data_wait": self.loader.wait_time - wait0}
        if cfg.monitor and self.d.is_main:
            var, zeros = monitor.activation_stats(self.model, self.probe)
            warn = monitor.health_warnings(ratios, var, zeros, annealing=lr < 0.1 * cfg.lr)
            rec.update(update_ratio=ratios, grad_norm=grads, act_var=var, dead_fraction=zeros,
                       warnings=[m for _, m in warn])
            for key, msg in warn:  # each layer's problem printed once per run
                if key not in self.warned:
                    self.warned.add(key)
                    self.warnings.append(msg)
                    self._say(f"warning (epoch {epoch + 1}): {msg}")
            monitor.save_first_filters(self.model, self.out / "filters" / f"epoch_{epoch + 1:03d}"
                                       ".png", f"{cfg.model} conv1, epoch {epoch + 1}")
        st["train_time"] = time_base + time.perf_counter() - t0
        rec["time"] = st["train_time"]
        self._log(rec)
        self._save(best=best)
        self._say(f"epoch {epoch + 1}/{cfg.epochs}  loss {rec['train_loss']:.4f}  "
                  f"train {rec['train_acc']:.2%}  val {val_acc:.2%}  lr {lr:.3g}  "
                  f"{rec['images_per_s']:.0f} img/s  {st['train_time']:.1f}s")
        if self.on_epoch is not None and self.d.is_main:
            self.on_epoch(rec, self.model)
            self.model.train()

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

    def _bar(self, n: int, start: int, epoch: int):
        show = self.cfg.progress if self.cfg.progress is not None else sys.stderr.isatty()
        if not show or not self.d.is_main:
            return None
        from tqdm import tqdm

        return tqdm(total=n, initial=start, desc=f"epoch {epoch + 1}/{self.cfg.epochs}",
                    unit="batch", leave=False, dynamic_ncols=True)

    def test_accuracy(self) -> float:
        """Accuracy of the best weights on the test split (written as a "test" record)."""
        from cnnzoo.data import build_loader, load_dataset

        kw = dict(self.cfg.dataset_kwargs)
        if self.cfg.dataset == "folder":
            kw["classes"] = self.classes  # the test folders get the training labels
        test = load_dataset(self.cfg.dataset, "test", data_dir=self.cfg.data_dir, **kw)
        self.model.load_state_dict(load_file(str(self.out / "best.safetensors")))
        loader = build_loader(test, 512, shuffle=False, mean=self.mean, std=self.std,
                              device=self.device, rank=self.d.rank,
                              world_size=self.d.world_size, channels_last=self.channels_last)
        _, acc = self.evaluate(loader)
        if self.d.is_main:
            log = ckpt.MetricsLog(self.out / "metrics.jsonl")
            log.write({"kind": "test", "step": self.state["step"], "test_acc": acc})
            log.close()
        return acc
