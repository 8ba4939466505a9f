"""Training benchmarks (results in BENCHMARKS.md, "## Training").

(a) LeNet-5 with its default recipe on Fashion-MNIST: training wall time until the test
    accuracy first reaches 90%, and the best test accuracy (tested after every epoch, outside
    the timed part).
(b) Throughput of the same architecture: cnnzoo's trainer vs a straightforward PyTorch loop
    (per-sample Dataset + DataLoader, NCHW, no tricks), measured in one run.

    .venv/bin/python benchmarks/bench_train.py [--epochs N] [--model lenet5] [--skip-a]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
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


def plain_loop_throughput(model_name, ds, mean, std, batch_size, steps, dataset_cls) -> float:
    """images/s of the straightforward loop: DataLoader over a per-sample Dataset, Adam, NCHW."""
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=10, in_chans=1)
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
        if i == steps + 5:
            break
    return n / (time.perf_counter() - t0)


def trainer_throughput(model_name, dataset, batch_size, epochs=1, amp=False) -> float:
    with tempfile.TemporaryDirectory() as out:
        recs = []
        train(TrainConfig(model=model_name, dataset=dataset, epochs=epochs, out=out,
                          batch_size=batch_size, progress=False, monitor=False, amp=amp),
              on_epoch=lambda rec, m: recs.append(rec))
    return max(r["images_per_s"] for r in recs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="lenet5")
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    ap.add_argument("--target", type=float, default=0.90)
    ap.add_argument("--skip-a", action="store_true")
    ap.add_argument("--skip-b", action="store_true")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
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
        bs = 128
        pil = plain_loop_throughput(args.model, ds, mean, std, bs, 150, PILPerSample)
        plain = plain_loop_throughput(args.model, ds, mean, std, bs, 150, PerSample)
        ours = trainer_throughput(args.model, args.dataset, bs)
        ours_bf16 = trainer_throughput(args.model, args.dataset, bs, amp=True)
        rows.append((f"throughput, plain loop, torchvision-style PIL + ToTensor per sample "
                     f"(batch {bs})", f"{pil:,.0f} img/s"))
        rows.append((f"throughput, plain loop, uint8 tensor per sample (batch {bs})",
                     f"{plain:,.0f} img/s"))
        rows.append((f"throughput, cnnzoo trainer, fp32 (batch {bs})",
                     f"{ours:,.0f} img/s ({ours / pil:.1f}x PIL loop, {ours / plain:.1f}x "
                     f"tensor loop)"))
        rows.append((f"throughput, cnnzoo trainer, --amp bf16 (batch {bs})",
                     f"{ours_bf16:,.0f} img/s ({ours_bf16 / pil:.1f}x PIL loop, "
                     f"{ours_bf16 / plain:.1f}x tensor loop)"))
    print("\n| measure | value |\n| --- | --- |")
    for k, v in rows:
        print(f"| {k} | {v} |")
    print("\ncommand: .venv/bin/python benchmarks/bench_train.py")


if __name__ == "__main__":
    main()
