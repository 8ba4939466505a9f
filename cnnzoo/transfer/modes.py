"""`transfer(source, target, mode, out=RUN)`: one way of reusing a source network, as a run.

- linear: the whole body frozen (batch-norm statistics too), a new classifier trained;
- features: the frozen body runs once over the images into the feature cache; a softmax
  classifier is trained on the vectors (softmax.py) and written back as the network's new
  classifier, so RUN is an ordinary run folder (`cnnzoo predict RUN photo.jpg`);
- finetune: frozen up to `freeze_to` (a stage), the rest trained, the body at
  `body_lr_mult` x the head's learning rate;
- full: everything trained from the pretrained start (the body at `body_lr_mult`, 1 by
  default);
- scratch: the same network from random weights, with the target's own normalisation: the
  baseline transfer has to beat.

The trainer modes use the model's recipe (optimizer, lr, schedule, augmentation), with fewer
images per batch and more epochs on a small target (`transfer_defaults`). Every mode reports
its validation and test accuracy and its wall time (feature extraction included), and
RUN/transfer.json says what was transferred from where, and what was adapted.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from cnnzoo.errors import CnnzooError
from cnnzoo.transfer.body import PRE_LOGITS, classifier_name, reset_head, stage_names
from cnnzoo.transfer.source import Source
from cnnzoo.transfer.target import Target, adapted_model

MODES = ("linear", "features", "finetune", "full", "scratch")
TRANSFER_JSON = "transfer.json"


@dataclass
class TransferResult:
    mode: str
    run_dir: str | None
    val_acc: float | None
    test_acc: float | None
    seconds: float  # wall time of the whole mode
    trainable: int  # parameters trained
    frozen: int  # parameters kept as the source had them
    freeze_to: str | None = None
    notes: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)


def transfer_defaults(n_train: int, recipe_batch: int, recipe_epochs: int) -> dict:
    """Batch size and epochs for a target of `n_train` training images: enough steps for a
    small one (the recipes' batches of 128-256 would make 1-3 steps an epoch of 500 images)."""
    batch = max(16, min(recipe_batch, 2 ** int(math.log2(max(1, n_train // 16)))))
    steps = max(1, n_train // batch)
    epochs = max(recipe_epochs, math.ceil(400 / steps)) if n_train < 20000 else recipe_epochs
    return {"batch_size": batch, "epochs": min(epochs, 60)}


def _count(model) -> tuple[int, int]:
    train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return train, sum(p.numel() for p in model.parameters()) - train


def _describe(source: Source, target: Target, mode: str, **kw) -> dict:
    return {"mode": mode, "source": source.spec, "source_model": source.model_name,
            "source_sha256": source.sha256, "source_classes": source.classes,
            "dataset": target.name, "dataset_name": target.train.name,
            "classes": target.classes, "class_subset": target.class_spec,
            "per_class": target.per_class, "n_train": len(target.train),
            "n_test": None if target.test is None else len(target.test),
            "notes": list(target.notes), **kw}


def _check_out(out: Path) -> None:
    from cnnzoo import runs

    if runs.is_run(out):
        raise CnnzooError(f"--out {out}: already holds a run; choose another folder")


def top1_on(model: torch.nn.Module, ds, mean, std, device="cpu",
                  batch_size: int = 256) -> float | None:
    """Top-1 of `model` (eval mode) on `ds`, normalised with `mean`/`std`."""
    from cnnzoo.data import build_loader
    from cnnzoo.evaluate.evaluate import Normalized, predict_proba

    if ds is None:
        return None
    c = ds.image_shape[0]
    loader = build_loader(ds, batch_size, shuffle=False, mean=[0.0] * c, std=[1.0] * c,
                          device=device, prefetch=False)
    probs, labels = predict_proba([Normalized(model.eval(), mean, std)], loader)
    return (probs.argmax(1) == labels).float().mean().item()


def transfer(source: Source, target: Target, mode: str, *, out, freeze_to: str | None = None,
             body_lr_mult: float | None = None, head_lr_mult: float = 1.0,
             layer: str = PRE_LOGITS, pool: str = "avg", cache_dir=None, chunk: int = 8192,
             train_overrides: dict | None = None, softmax: dict | None = None,
             val_fraction: float = 0.1, seed: int = 0, device: str = "auto",
             progress: bool | None = None) -> TransferResult:
    """Reuse `source` on `target` in `mode` (module doc); the run goes to `out`."""
    if mode not in MODES:
        raise CnnzooError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    out = Path(out)
    _check_out(out)
    if mode == "finetune":
        stages = stage_names(source.model)
        if freeze_to is None:
            raise CnnzooError(f"--mode finetune needs --freeze-to STAGE (stages of "
                              f"{source.model_name}: {', '.join(stages)})")
    elif freeze_to is not None:
        raise CnnzooError(f"--freeze-to applies to --mode finetune, not {mode}")
    if mode != "features" and (layer != PRE_LOGITS or pool != "avg"):
        raise CnnzooError(f"--layer/--pool apply to --mode features, not {mode}")
    t0 = time.perf_counter()
    if mode == "features":
        res = _features(source, target, out, layer=layer, pool=pool, cache_dir=cache_dir,
                        chunk=chunk, softmax=softmax or {}, val_fraction=val_fraction,
                        seed=seed, device=device)
    else:
        res = _trained(source, target, mode, out, freeze_to=freeze_to,
                       body_lr_mult=body_lr_mult, head_lr_mult=head_lr_mult,
                       overrides=train_overrides or {}, val_fraction=val_fraction, seed=seed,
                       device=device, progress=progress)
    res.seconds = time.perf_counter() - t0
    from cnnzoo.utils.io import atomic_write_json

    atomic_write_json(out / TRANSFER_JSON, _describe(source, target, mode, result=asdict(res)))
    return res


# --- the trainer modes --------------------------------------------------------------------

def _trained(source, target, mode, out, *, freeze_to, body_lr_mult, head_lr_mult, overrides,
             val_fraction, seed, device, progress) -> TransferResult:
    from cnnzoo import runs
    from cnnzoo.models.registry import create_model, model_info
    from cnnzoo.train import TrainConfig, train
    from cnnzoo.train.freeze import freeze, param_groups
    from cnnzoo.train.recipes import recipe_for

    k, (c, h, w) = len(target.classes), target.input_size
    if mode == "scratch":
        torch.manual_seed(seed)
        model = create_model(source.model_name, num_classes=k, in_chans=c,
                             **source.model_kwargs)
        groups, norm = None, None  # the target's own statistics, as any run from scratch
    else:
        model = adapted_model(source, target, k)
        if mode == "linear":
            freeze(model)
        elif mode == "finetune":
            freeze(model, freeze_to)
        mult = body_lr_mult if body_lr_mult is not None else (0.1 if mode == "finetune" else 1)
        groups = param_groups(model, mult, head_lr_mult)
        norm = (target.mean, target.std)
    trainable, frozen = _count(model)
    train_ds, val_ds = target.train.split(val_fraction, seed=seed)
    rec = recipe_for(model_info(source.model_name).recipe, max(h, w) <= 64)
    cfg = {"model": source.model_name, "model_kwargs": dict(source.model_kwargs),
           "dataset": target.name, "data_dir": target.data_dir,
           "dataset_kwargs": dict(target.dataset_kwargs), "val_fraction": val_fraction,
           "seed": seed, "device": device, "out": str(out), "progress": progress,
           **transfer_defaults(len(train_ds), rec["batch_size"], rec["epochs"]), **overrides}
    res = train(TrainConfig.from_dict(cfg), model=model, param_groups=groups,
                data=(train_ds, val_ds), norm=norm)
    best, config = runs.load_run(out, which="best")
    test = top1_on(best, target.test, config["mean"], config["std"])
    return TransferResult(mode, str(out), res.best_val_acc, test, 0.0, trainable, frozen,
                          freeze_to, list(target.notes),
                          {"epochs": res.epochs_done, "steps": res.step,
                           "train_seconds": res.train_time, "best_epoch": res.best_epoch,
                           "batch_size": cfg["batch_size"],
                           "body_lr_mult": None if groups is None else groups[0]["lr_mult"]})


# --- features: the frozen body once, a softmax classifier on its vectors ------------------

def _features(source, target, out, *, layer, pool, cache_dir, chunk, softmax, val_fraction,
              seed, device) -> TransferResult:
    import cnnzoo
    from cnnzoo import runs
    from cnnzoo.transfer.extract import extract
    from cnnzoo.transfer.softmax import accuracy, fit_softmax
    from cnnzoo.utils.device import pick_device

    dev = pick_device(device)
    model = adapted_model(source, target)
    adapt = [n for n in target.notes if "channel" in n]
    train_ds, val_ds = target.train.split(val_fraction, seed=seed)
    common = dict(source_sha256=source.sha256, mean=target.mean, std=target.std, layer=layer,
                  pool=pool, cache_dir=cache_dir, chunk=chunk, device=dev,
                  preprocess={"size": list(target.input_size), "adapt": adapt})
    t0 = time.perf_counter()
    sets, reused = {}, {}
    for split, ds in (("train", train_ds), ("val", val_ds), ("test", target.test)):
        if ds is not None:
            sets[split], reused[split] = extract(model, ds, split=split, **common)
    extract_s = time.perf_counter() - t0
    k = len(target.classes)
    res = fit_softmax(sets["train"], sets["val"], k, seed=seed, **softmax)
    test = accuracy(sets["test"], res.weight, res.bias) if "test" in sets else None
    details = {"layer": layer, "pool": pool, "dim": sets["train"].dim,
               "cache": str(sets["train"].root.parent), "reused": reused,
               "extract_seconds": extract_s, "epochs": len(res.history),
               "best_epoch": res.best_epoch, "softmax": softmax}
    run_dir = None
    head = model.get_submodule(classifier_name(model))
    if layer == PRE_LOGITS and isinstance(head, torch.nn.Linear):
        # the vectors are the classifier's input: the softmax becomes the network's head
        reset_head(model, k)
        head = model.get_submodule(classifier_name(model))
        with torch.no_grad():
            head.weight.copy_(res.weight)
            head.bias.copy_(res.bias)
        c = target.input_size[0]
        config = {"model": source.model_name, "model_kwargs": dict(source.model_kwargs),
                  "num_classes": k, "in_chans": c, "input_size": list(target.input_size),
                  "classes": list(target.classes), "mean": list(target.mean),
                  "std": list(target.std), "dataset": target.name, "data_dir": target.data_dir,
                  "dataset_kwargs": dict(target.dataset_kwargs),
                  "cnnzoo_version": cnnzoo.__version__}
        out.mkdir(parents=True, exist_ok=True)
        runs.write_config(out, config)
        sd = model.state_dict()
        runs.save_weights(out / runs.BEST, sd, config)
        runs.save_weights(out / runs.WEIGHTS, sd, config)
        run_dir = str(out)
    else:
        details["no_run_folder"] = ("the vectors of a layer other than the classifier's "
                                    "input cannot become the network's head")
    trainable = res.weight.numel() + res.bias.numel()
    frozen = sum(p.numel() for p in source.model.parameters()) - sum(
        p.numel() for p in source.model.get_submodule(classifier_name(source.model)).parameters())
    return TransferResult("features", run_dir, res.best_val_acc, test, 0.0, trainable,
                          frozen, None, list(target.notes), details)
