"""A class subset of a dataset, relabelled 0..k-1, optionally a few images per class:
"pretrain on Fashion-MNIST classes 0-4, then learn 5-9 from 100 labelled images each".

    subset(ds, "5-9", per_class=100, seed=0)     # an ArrayDataset or an ImageFolderDataset
    check_classes(ds)                            # at least 2 classes, none of them empty
"""

from __future__ import annotations

import torch

from cnnzoo.errors import DataError


def parse_classes(spec, classes: list[str]) -> list[int]:
    """Class indices from "0-4", "5,7,9", "Sandal,Bag" or a list of ints / names, in the
    order given; a bad entry is a DataError naming it and the valid range."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[int] = []
    k = len(classes)
    for item in items:
        item = item.strip() if isinstance(item, str) else item
        if isinstance(item, str) and item in classes:
            out.append(classes.index(item))
            continue
        try:
            if isinstance(item, str) and "-" in item.strip("-"):
                lo, hi = (int(v) for v in item.split("-"))
                picked = list(range(lo, hi + 1))
            else:
                picked = [int(item)]
        except ValueError:
            raise DataError(f"--classes: {item!r} is neither a class index (0-{k - 1}) nor a "
                            f"class name ({', '.join(classes[:10])}"
                            f"{', ...' if k > 10 else ''})") from None
        bad = [i for i in picked if not 0 <= i < k]
        if bad or not picked:
            raise DataError(f"--classes: {item!r} is outside the {k} classes (0-{k - 1})")
        out += picked
    if len(set(out)) != len(out):
        raise DataError(f"--classes: {spec!r} names a class twice")
    return out


def _describe(idx: list[int]) -> str:
    """[5, 6, 7, 8, 9] -> "5-9"; [1, 3] -> "1,3"."""
    if len(idx) > 2 and idx == list(range(idx[0], idx[-1] + 1)):
        return f"{idx[0]}-{idx[-1]}"
    return ",".join(map(str, idx))


def subset(ds, classes, per_class: int | None = None, seed: int = 0):
    """The images of `classes` (see parse_classes), labelled 0..k-1 in that order, named
    e.g. "fashion-mnist[5-9]x100"; `per_class` keeps that many per class (a seeded random
    draw, all of a class that has fewer)."""
    keep = parse_classes(classes, list(ds.classes))
    if per_class is not None and per_class < 1:
        raise DataError(f"--per-class must be >= 1, got {per_class}")
    labels = torch.as_tensor(ds.labels)
    g = torch.Generator().manual_seed(seed)
    index, new_labels = [], []
    for new, old in enumerate(keep):
        idx = (labels == old).nonzero().flatten()
        if per_class is not None and len(idx) > per_class:
            idx = idx[torch.randperm(len(idx), generator=g)[:per_class]].sort().values
        index.append(idx)
        new_labels.append(torch.full((len(idx),), new, dtype=torch.int64))
    order = torch.cat(index).argsort()  # the dataset's own order, not class by class
    index, new_labels = torch.cat(index)[order], torch.cat(new_labels)[order]
    name = f"{ds.name}[{_describe(keep)}]" + (f"x{per_class}" if per_class else "")
    names = [ds.classes[i] for i in keep]
    out = ds.subset(index, name)
    out.classes = names
    if hasattr(out, "samples"):  # an image folder: (path, label) pairs carry the label
        out.samples = [(p, int(y)) for (p, _), y in zip(out.samples, new_labels)]
    out.labels = new_labels
    return out


def check_classes(ds, what: str | None = None) -> None:
    """DataError unless `ds` has at least 2 classes and an image in every one of them."""
    what = what or str(getattr(ds, "root", None) or ds.name)
    classes = list(ds.classes)
    if len(classes) < 2:
        found = f" ({classes[0]})" if classes else ""
        raise DataError(f"{what}: {len(classes)} class{found}; a classifier needs at least 2 "
                        "(one folder of images per class)")
    counts = torch.bincount(torch.as_tensor(ds.labels), minlength=len(classes))
    empty = [c for c, n in zip(classes, counts.tolist()) if n == 0]
    if empty:
        raise DataError(f"{what}: class {', '.join(empty)} has no images")
