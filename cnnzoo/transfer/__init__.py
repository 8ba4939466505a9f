"""Transfer learning: a trained network's weights on a new dataset (cnnzoo transfer).

    source = load_source("runs/lenet5")            # or a weights file, or "pretrained:NAME"
    target = load_target(source, "folder", "photos/")
    result = transfer(source, target, "finetune", out="runs/photos", freeze_to="layer2")

Modes: linear (frozen body incl. batch-norm statistics, new classifier), features (the
frozen body runs once into a feature cache, a softmax classifier learns from the vectors),
finetune (frozen up to a stage, the rest at a lower learning rate than the head), full
(everything from the pretrained start) and scratch (the same network from random weights,
the baseline). `compare` runs them side by side and writes a report.
"""

from cnnzoo.transfer.source import Source, load_source
from cnnzoo.transfer.target import Target, load_target

__all__ = ["Source", "Target", "load_source", "load_target"]
