"""Class subsets of a dataset (cnnzoo.data.subset): relabelled in the dataset's order, a
seeded draw per class, class specs, and the two-classes-each-with-images check."""

from __future__ import annotations

import pytest
import torch

from cnnzoo.data.datasets import ArrayDataset
from cnnzoo.data.subset import check_classes, parse_classes, subset
from cnnzoo.errors import DataError


def toy(n=60, k=6, c=1, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % k
    images = torch.randint(0, 256, (n, c, size, size), generator=g, dtype=torch.uint8)
    return ArrayDataset(images, labels, [f"c{i}" for i in range(k)], "toy")


def test_subset_relabels_keeps_order_and_draws_per_class():
    ds = toy()
    sub = subset(ds, "3-5")
    assert sub.classes == ["c3", "c4", "c5"] and sub.name == "toy[3-5]"
    assert len(sub) == 30 and set(sub.labels.tolist()) == {0, 1, 2}
    keep = (ds.labels >= 3).nonzero().flatten()
    assert torch.equal(sub.images, ds.images[keep])  # the dataset's order
    assert torch.equal(sub.labels, ds.labels[keep] - 3)
    few = subset(ds, "c5,c1", per_class=4, seed=1)
    assert few.classes == ["c5", "c1"] and few.name == "toy[5,1]x4"
    assert torch.bincount(few.labels).tolist() == [4, 4]
    assert torch.equal(subset(ds, "c5,c1", per_class=4, seed=1).images, few.images)
    assert not torch.equal(subset(ds, "c5,c1", per_class=4, seed=2).images, few.images)


def test_parse_classes_errors_name_the_entry():
    names = [f"c{i}" for i in range(6)]
    assert parse_classes("0-2,5", names) == [0, 1, 2, 5]
    for bad, msg in [("7", "outside the 6 classes"), ("dog", "neither a class index"),
                     ("1,1", "names a class twice"), ("4-9", "outside")]:
        with pytest.raises(DataError, match=msg):
            parse_classes(bad, names)


def test_check_classes_wants_two_classes_each_with_images():
    ds = toy()
    check_classes(ds)
    with pytest.raises(DataError, match="1 class .*at least 2"):
        check_classes(subset(ds, "2"))
    ds.labels[ds.labels == 4] = 0
    with pytest.raises(DataError, match="class c4 has no images"):
        check_classes(ds)


def test_subset_of_an_image_folder_relabels_its_samples(tmp_path):
    import numpy as np
    from PIL import Image

    from cnnzoo.data import ImageFolderDataset

    for c in ("ant", "bee", "cat"):
        (tmp_path / c).mkdir()
        for j in range(3):
            Image.fromarray(np.full((8, 8, 3), 40 * j, np.uint8)).save(tmp_path / c / f"{j}.png")
    ds = ImageFolderDataset(tmp_path, image_size=8)
    sub = subset(ds, "cat,ant", per_class=2)
    assert sub.classes == ["cat", "ant"] and len(sub) == 4
    assert sorted(sub.labels.tolist()) == [0, 0, 1, 1]
    for (path, label), y in zip(sub.samples, sub.labels.tolist()):
        assert label == y and f"/{sub.classes[y]}/" in path
    _, label, err = sub[0]
    assert err == "" and label == sub.labels[0]
