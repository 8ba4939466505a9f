"""The target of a transfer: a dataset (a named one, optionally a class subset with a few
images per class, or a folder of photos) fitted to the source network's input, and the
source network fitted to it (channels, normalisation). Every adaptation is said in `notes`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch.nn as nn

from cnnzoo.data.subset import check_classes, subset
from cnnzoo.transfer.adapt import adapt_in_chans, adapt_stats, resize_images
from cnnzoo.transfer.source import Source


@dataclass
class Target:
    name: str  # the dataset as the user named it ("fashion-mnist", "folder")
    train: object  # ArrayDataset or ImageFolderDataset, at the source's input size
    test: object | None
    classes: list[str]
    input_size: tuple[int, int, int]  # (C, H, W) the transferred network takes
    mean: list[float]  # the source's normalisation, for these channels
    std: list[float]
    data_dir: str | None = None
    dataset_kwargs: dict = field(default_factory=dict)  # what rebuilds the folder dataset
    class_spec: str | list | None = None
    per_class: int | None = None
    notes: list[str] = field(default_factory=list)


def _fit_size(ds, size_hw, notes: list[str], split: str):
    if ds is None or hasattr(ds, "samples") or tuple(ds.image_shape[1:]) == tuple(size_hw):
        return ds
    h, w = ds.image_shape[1:]
    if split == "train":
        notes.append(f"images resized {h}x{w} -> {size_hw[0]}x{size_hw[1]} (the source's "
                     "input size)")
    ds.images = resize_images(ds.images, size_hw)
    return ds


def load_target(source: Source, dataset: str, data_dir=None, *, classes=None,
                per_class: int | None = None, seed: int = 0, test: bool = True,
                dataset_kwargs: dict | None = None) -> Target:
    """The target dataset's train (and test) split, fitted to `source` (module doc).

    `classes` ("5-9", names ...) keeps those classes, relabelled 0..k-1, in both splits;
    `per_class` keeps that many training images of each (seeded). A folder of photos is read
    at the source's input size and channel count. `dataset_kwargs` go to `load_dataset`.
    """
    from cnnzoo.data import load_dataset
    from cnnzoo.data.datasets import folder_has_test_split

    c, h, w = source.input_size
    kw = dict(dataset_kwargs or {})  # e.g. the synthetic set's size
    if dataset == "folder":
        kw |= {"image_size": [h, w], "channels": c, **source.read}
    train = load_dataset(dataset, "train", data_dir=data_dir, **kw)
    test_ds = None
    if test and (dataset != "folder" or folder_has_test_split(data_dir)):
        test_kw = dict(kw, classes=list(train.classes)) if dataset == "folder" else kw
        test_ds = load_dataset(dataset, "test", data_dir=data_dir, **test_kw)
    if classes is not None or per_class is not None:
        spec = classes if classes is not None else list(range(len(train.classes)))
        train = subset(train, spec, per_class=per_class, seed=seed)
        if test_ds is not None:
            test_ds = subset(test_ds, spec)
    check_classes(train)
    notes: list[str] = []
    train = _fit_size(train, (h, w), notes, "train")
    test_ds = _fit_size(test_ds, (h, w), notes, "test")
    tc = train.image_shape[0]
    mean, std = adapt_stats(source.mean, source.std, tc)
    return Target(dataset, train, test_ds, list(train.classes), (tc, h, w), mean, std,
                  None if data_dir is None else str(data_dir), kw, classes, per_class, notes)


def adapted_model(source: Source, target: Target, num_classes: int | None = None) -> nn.Module:
    """A copy of the source network for the target's channels, with a new classifier for
    its classes when `num_classes` is given (the source's own otherwise)."""
    from cnnzoo.transfer.body import reset_head

    model = copy.deepcopy(source.model)
    note = adapt_in_chans(model, target.input_size[0])
    if note and note not in target.notes:
        target.notes.append(note)
    if num_classes is not None:
        reset_head(model, num_classes)
    return model
