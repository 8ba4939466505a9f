"""What a report shows of one run, gathered once: config, metrics, weights and test results.

Nothing is retrained and no file in the run folder is written. The test results come from
`cnnzoo eval`'s output when it is newer than the weights (RUN/eval/<dataset>_none_<which>.json),
otherwise from one pass over the test split; without the test split (no data on this
machine) the page falls back to the trainer's "test" record in metrics.jsonl.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from cnnzoo import runs
from cnnzoo.errors import CnnzooError

N_PICK = 512  # test images predicted to choose the examples when eval results are reused


@dataclass
class RunData:
    path: Path
    name: str
    config: dict
    records: list[dict]
    model: torch.nn.Module
    which: str
    weights: Path
    device: torch.device
    results: dict | None = None  # top1, top5, n, per_class, classes, confusion, source
    test: object = None  # the test split (ArrayDataset / ImageFolderDataset) or None
    test_error: str = ""  # why there is no test split
    probs: torch.Tensor | None = None  # softmax of test images [: len(probs)]
    notes: list[str] = field(default_factory=list)
    cache: dict = field(default_factory=dict)  # what several sections use, computed once

    @property
    def classes(self) -> list[str]:
        c = self.config.get("classes")
        return [str(v) for v in c] if c else [str(i) for i in range(self.config["num_classes"])]

    @property
    def epochs(self) -> list[dict]:
        return [r for r in self.records if r.get("kind") == "epoch"]

    def test_record(self) -> float | None:
        accs = [r["test_acc"] for r in self.records if r.get("kind") == "test"
                and isinstance(r.get("test_acc"), (int, float))]
        return accs[-1] if accs else None


def load(run_dir, *, which: str = "best", device="cpu", name: str | None = None,
         evaluate: bool = True) -> RunData:
    """Read a run folder: config, metrics, the `which` weights, and (with `evaluate`) the
    test results."""
    path = Path(run_dir)
    model, config = runs.load_run(path, which=which, device=device)
    metrics = path / runs.METRICS
    records = runs.read_metrics(metrics) if metrics.exists() else []
    run = RunData(path, name or path.resolve().name, config, records, model, which,
                  runs.weights_path(path, which), torch.device(device))
    if not records:
        run.notes.append(f"{metrics}: not found, no curves")
    if evaluate:
        _test_results(run)
    return run


def test_images(ds, index) -> torch.Tensor:
    """uint8 [N, C, H, W] of these test images (either dataset kind)."""
    if hasattr(ds, "images"):
        return ds.images[torch.as_tensor(index, dtype=torch.long)]
    return torch.stack([ds[int(i)][0] for i in index])


@torch.no_grad()
def predict(run: RunData, images: torch.Tensor, batch: int = 1024) -> torch.Tensor:
    """Softmax [N, K] of uint8 images through the run's model with its own normalisation."""
    from cnnzoo.evaluate import Normalized, predict_proba

    net = Normalized(run.model, run.config["mean"], run.config["std"])
    batches = [(images[i:i + batch].to(run.device).float() / 255, torch.zeros(0))
               for i in range(0, len(images), batch)]
    return predict_proba([net], batches)[0]


def _eval_file(run: RunData) -> dict | None:
    """`cnnzoo eval`'s summary for these weights, when it is newer than them."""
    name = run.test.name if run.test is not None else run.config["dataset"]
    path = run.path / runs.EVAL / f"{name}_none_{run.which}.json"
    try:
        if path.stat().st_mtime < run.weights.stat().st_mtime:
            return None  # evaluated before the weights changed
        r = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    keys = ("top1", "n", "classes", "confusion", "per_class")
    if not isinstance(r, dict) or any(k not in r for k in keys):
        return None
    r["source"] = f"{path.relative_to(run.path)} (cnnzoo eval)"
    return r


def _test_results(run: RunData) -> None:
    from cnnzoo.evaluate.evaluate import check_dataset, test_set
    from cnnzoo.evaluate.metrics import confusion_matrix, per_class_accuracy, topk_accuracy

    try:
        run.test = test_set(run.config)
        check_dataset(run.test, run.config, run.path)
    except CnnzooError as e:
        run.test, run.test_error = None, str(e)
    run.results = _eval_file(run)
    if run.test is None:
        return
    n = len(run.test) if run.results is None else min(N_PICK, len(run.test))
    labels = torch.as_tensor(run.test.labels[:n])
    run.probs = torch.cat([predict(run, test_images(run.test, range(i, min(i + 2048, n))))
                           for i in range(0, n, 2048)])  # chunks: a folder split decodes files
    if run.results is not None:
        return
    k = run.config["num_classes"]
    acc = topk_accuracy(run.probs, labels, ks=(1, 5))
    cm = confusion_matrix(run.probs.argmax(1), labels, k)
    per_class = per_class_accuracy(cm)
    run.results = {
        "top1": acc[1], "top5": acc.get(5), "n": n, "classes": run.classes,
        "confusion": cm.tolist(),
        "per_class": {c: (None if torch.isnan(a) else a.item())
                      for c, a in zip(run.classes, per_class)},
        "source": f"the {run.test.name} test split, computed for this report",
    }
