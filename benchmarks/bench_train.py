"""Training benchmarks (results in BENCHMARKS.md, "## Training").

(a) LeNet-5 with its default recipe on Fashion-MNIST: training wall time until the test
    accuracy first reaches 90%, and the best test accuracy (tested after every epoch, outside
    the timed part).
(b) Throughput of the same architecture at the same batch size: cnnzoo's trainer vs a
    straightforward PyTorch loop (per-sample Dataset + DataLoader, NCHW, no tricks), measured
    in one run, the loops interleaved; the median of --repeats rounds.

    .venv/bin/python benchmarks/bench_train.py [--epochs N] [--model lenet5] [--skip-a]
        [--batch 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from bench_augment import machine_info  # this folder is on sys.path when run as a script
from PIL import Image

from cnnzoo.data import build_loader, load_dataset
from cnnzoo.models.registry import create_model
from cnnzoo.train import TrainConfig, train


def test_accuracy(model, test, mean, std) -> float:
    loader = build_loader(test, 1000, shuffle=False, mean=mean, std=std, prefetch=False)
    model.eval()
    correct = 0
    with torch.inference_mode():
        for x, y in loader:
            correct += int((model(x).argmax(1) == y).sum())
    return correct / len(test)


def time_to_accuracy(model_name: str, dataset: str, epochs: int | None, target: float):
    """Train with the default recipe; test after every epoch (untimed). Returns the result,
    the resolved recipe, (epoch, seconds) of the first test accuracy >= target, and the best
    (epoch, seconds, val acc, test acc)."""
    test = load_dataset(dataset, "test")
    curve = []
    with tempfile.TemporaryDirectory() as out:
        def on_epoch(rec, model):
            run = json.loads((Path(out) / "config.json").read_text())  # the train split's stats
            acc = test_accuracy(model, test, run["mean"], run["std"])
            curve.append((rec["epoch"], rec["time"], rec["val_acc"], acc))
            print(f"  epoch {rec['epoch']:2d}  {rec['time']:6.1f} s  val {rec['val_acc']:.2%}  "
                  f"test {acc:.2%}", flush=True)

        res = train(TrainConfig(model=model_name, dataset=dataset, epochs=epochs, out=out,
                                progress=False), on_epoch=on_epoch)
        recipe = json.loads((Path(out) / "config.json").read_text())["train"]
    hit = next(((e, t) for e, t, _, a in curve if a >= target), None)
    return res, recipe, hit, max(curve, key=lambda r: r[3])


class PerSample(torch.utils.data.Dataset):
    """The textbook Dataset: one normalised float image per __getitem__, from a uint8 tensor."""

    def __init__(self, ds, mean, std):
        self.ds, self.mean, self.std = ds, mean[0], std[0]

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        x, y = self.ds[i]
        return (x.float() / 255 - self.mean) / self.std, y


class PILPerSample(PerSample):
    """What torchvision's FashionMNIST + ToTensor() + Normalize() do per sample (written out
    here because torchvision is not a dependency): uint8 array -> PIL image -> float tensor
    scaled to 0..1 -> normalised."""

    def __getitem__(self, i):
        x, y = self.ds[i]
        img = Image.fromarray(x[0].numpy(), mode="L")
        t = torch.from_numpy(np.array(img, np.uint8, copy=True)).view(1, *img.size[::-1])
        return (t.float().div(255) - self.mean) / self.std, y


def plain_loop_throughput(model_name, ds, mean, std, batch_size, seconds, dataset_cls) -> float:
    """images/s of the straightforward loop: DataLoader over a per-sample Dataset, Adam, NCHW,
    for `seconds` after 5 warm-up steps."""
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=ds.num_classes, in_chans=ds.image_shape[0],
                         **_small(model_name, ds))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    dl = torch.utils.data.DataLoader(dataset_cls(ds, mean, std), batch_size=batch_size,
                                     shuffle=True)
    n, t0 = 0, None
    for i, (x, y) in enumerate(dl):
        if i == 5:  # warm-up excluded
            t0, n = time.perf_counter(), 0
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        n += len(y)
        if t0 is not None and time.perf_counter() - t0 >= seconds:
            break
    return n / (time.perf_counter() - t0)


def _small(model_name, ds) -> dict:
    from cnnzoo.models.registry import model_info

    return {"small_input": True} if "small_input" in model_info(model_name).knobs else {}


def trainer_throughput(model_name, dataset, batch_size, seconds, amp=False) -> float:
    """images/s of cnnzoo's trainer with the model's default recipe at `batch_size`
    (augmentation, monitoring, channels_last as in a real run; `amp`: --amp), from its step
    records: the steps after the 5th (warm-up) of a run stopped by --time-limit `seconds`."""
    with tempfile.TemporaryDirectory() as out:
        train(TrainConfig(model=model_name, dataset=dataset, epochs=1, out=out,
                          batch_size=batch_size, progress=False, log_every=1,
                          time_limit=seconds, amp=amp))
        recs = [json.loads(x) for x in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    t = [r["time"] for r in recs if r["kind"] == "step"]
    return batch_size * (len(t) - 5) / (t[-1] - t[4])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="lenet5")
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    ap.add_argument("--target", type=float, default=0.90)
    ap.add_argument("--skip-a", action="store_true")
    ap.add_argument("--skip-b", action="store_true")
    ap.add_argument("--throughput-models", default="lenet5,resnet20", metavar="M1,M2")
    ap.add_argument("--batch", type=int, default=256, help="(b): the batch of every loop")
    ap.add_argument("--seconds", type=float, default=8.0, help="(b): timed seconds per run")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(machine_info())
    rows = []
    if not args.skip_a:
        print(f"(a) {args.model}, default recipe, {args.dataset}:")
        res, recipe, hit, best = time_to_accuracy(args.model, args.dataset, args.epochs,
                                                  args.target)
        r = {k: recipe[k] for k in ("optimizer", "lr", "batch_size", "epochs", "schedule",
                                    "weight_decay", "augment")}
        rows.append(("recipe", ", ".join(f"{k} {v}" for k, v in r.items())))
        rows.append((f"train time to >= {args.target:.0%} test acc",
                     f"{hit[1]:.1f} s (epoch {hit[0]})" if hit else "not reached"))
        rows.append(("best test acc", f"{best[3]:.2%} (epoch {best[0]}, {best[1]:.1f} s)"))
        rows.append(("total train time", f"{res.train_time:.1f} s"))
    if not args.skip_b:
        ds = load_dataset(args.dataset, "train")
        mean, std = ds.channel_stats()
        for model in args.throughput_models.split(","):
            bs, secs = args.batch, args.seconds
            runs = {"pil": [], "tensor": [], "cnnzoo": [], "cnnzoo --amp": []}
            for _ in range(args.repeats):  # interleaved: machine drift hits all three alike
                runs["pil"].append(plain_loop_throughput(model, ds, mean, std, bs, secs,
                                                         PILPerSample))
                runs["tensor"].append(plain_loop_throughput(model, ds, mean, std, bs, secs,
                                                            PerSample))
                runs["cnnzoo"].append(trainer_throughput(model, args.dataset, bs, secs))
                runs["cnnzoo --amp"].append(trainer_throughput(model, args.dataset, bs, secs,
                                                               amp=True))
                print(f"  {model}: " + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in runs.items()),
                      flush=True)
            med = {k: statistics.median(v) for k, v in runs.items()}
            spread = {k: (max(v) - min(v)) / med[k] for k, v in runs.items()}
            rows.append((f"{model}, plain loop: torchvision-style per-sample Dataset (uint8 -> "
                         f"PIL -> ToTensor -> Normalize) + DataLoader, NCHW, Adam, batch {bs}",
                         f"{med['pil']:,.0f} img/s (spread {spread['pil']:.0%})"))
            rows.append((f"{model}, plain loop: per-sample Dataset over a uint8 tensor + "
                         f"DataLoader, NCHW, Adam, batch {bs}",
                         f"{med['tensor']:,.0f} img/s (spread {spread['tensor']:.0%})"))
            for key, what in (("cnnzoo", "default recipe"),
                              ("cnnzoo --amp", "default recipe + --amp (bf16)")):
                v = med[key]
                rows.append((f"{model}, cnnzoo trainer, {what} at batch {bs}",
                             f"{v:,.0f} img/s (spread {spread[key]:.0%}): {v / med['pil']:.2f}x "
                             f"the PIL loop, {v / med['tensor']:.2f}x the tensor loop"))
    print("\n| measure | value |\n| --- | --- |")
    for k, v in rows:
        print(f"| {k} | {v} |")
    print(f"\nat the end: {machine_info()}")


if __name__ == "__main__":
    main()
