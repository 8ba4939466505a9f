"""ImageFolder: Pillow decoding through a DataLoader; unreadable images skipped (default,
with a warning naming the path) or fatal (on_error="raise")."""

import os

import numpy as np
import pytest
import torch
from PIL import Image

from cnnzoo.data import ImageFolderDataset, build_augment, build_loader
from cnnzoo.errors import DataError


def make_folder(root, bad=False):
    rng = np.random.default_rng(0)
    for c, color in (("cat", (200, 30, 30)), ("dog", (30, 30, 200))):
        (root / c).mkdir(parents=True)
        for i in range(5):
            a = np.clip(np.array(color) + rng.integers(-20, 20, (40 + i, 50, 3)), 0, 255)
            ext = "png" if i % 2 else "jpg"
            Image.fromarray(a.astype(np.uint8)).save(root / c / f"{i}.{ext}")
    (root / "cat" / "notes.txt").write_text("not an image, ignored")
    if bad:
        (root / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage, not a jpeg")
    return root


def test_scan_and_decode(tmp_path):
    ds = ImageFolderDataset(make_folder(tmp_path / "pets"), image_size=16)
    assert ds.classes == ["cat", "dog"] and len(ds) == 10 and ds.image_shape == (3, 16, 16)
    img, label, err = ds[0]
    assert img.shape == (3, 16, 16) and img.dtype == torch.uint8 and label == 0 and err == ""
    assert img[0].float().mean() > 150 and img[2].float().mean() < 80  # red cat
    gray = ImageFolderDataset(tmp_path / "pets", image_size=(12, 10), channels=1)
    assert gray[7][0].shape == (1, 12, 10)


def test_loader_batches_with_workers(tmp_path):
    ds = ImageFolderDataset(make_folder(tmp_path / "pets"), image_size=16)
    mean, std = ds.channel_stats()
    dl = build_loader(ds, 4, shuffle=True, augment=build_augment("flip,crop:2", (16, 16)),
                      mean=mean, std=std, device="cpu", seed=0, num_workers=1)
    got = [(x, y) for x, y in dl]
    assert len(dl) == 3 and [len(y) for _, y in got] == [4, 4, 2]
    assert sorted(torch.cat([y for _, y in got]).tolist()) == [0] * 5 + [1] * 5
    assert all(x.shape[1:] == (3, 16, 16) and x.dtype == torch.float32 for x, _ in got)


class _PidFolder(ImageFolderDataset):
    """Labels each image with the id of the process that decoded it."""

    def __getitem__(self, i):
        img, _, err = super().__getitem__(i)
        return img, os.getpid(), err


def test_images_are_decoded_in_worker_processes(tmp_path):
    ds = _PidFolder(make_folder(tmp_path / "pets", bad=True), image_size=16)
    dl = build_loader(ds, 4, shuffle=False, mean=None, std=None, device="cpu", num_workers=2)
    with pytest.warns(UserWarning, match=r"skipped unreadable image .*dog/broken\.jpg"):
        pids = set(torch.cat([y for _, y in dl]).tolist())
    assert len(pids) == 2 and os.getpid() not in pids
    default = build_loader(ds, 4, shuffle=False, mean=None, std=None, device="cpu")
    assert default.num_workers >= 1  # workers unless asked otherwise


def test_unreadable_image_is_skipped_with_its_path(tmp_path):
    ds = ImageFolderDataset(make_folder(tmp_path / "pets", bad=True), image_size=16)
    assert len(ds) == 11
    dl = build_loader(ds, 4, shuffle=False, mean=None, std=None, device="cpu", num_workers=0)
    with pytest.warns(UserWarning, match=r"skipped unreadable image .*dog/broken\.jpg"):
        ys = torch.cat([y for _, y in dl])
    assert len(ys) == 10 and any("broken.jpg" in s for s in dl.skipped)


def test_unreadable_image_fails_loudly_when_asked(tmp_path):
    ds = ImageFolderDataset(make_folder(tmp_path / "pets", bad=True), image_size=16,
                            on_error="raise")
    dl = build_loader(ds, 4, shuffle=False, mean=None, std=None, device="cpu", num_workers=0)
    with pytest.raises(DataError, match=r"cannot read image .*dog/broken\.jpg"):
        list(dl)


def test_missing_or_empty_folder(tmp_path):
    with pytest.raises(DataError, match="image folder not found"):
        ImageFolderDataset(tmp_path / "nope")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="no images found"):
        ImageFolderDataset(tmp_path / "empty")


def test_split(tmp_path):
    ds = ImageFolderDataset(make_folder(tmp_path / "pets"), image_size=8)
    tr, val = ds.split(0.3, seed=0)
    assert len(val) == 3 and len(tr) == 7
    assert not {p for p, _ in tr.samples} & {p for p, _ in val.samples}
    assert [p for p, _ in ds.split(0.3, seed=0)[1].samples] == [p for p, _ in val.samples]


def test_a_batch_of_only_unreadable_images(tmp_path):
    root = tmp_path / "bad"
    (root / "a").mkdir(parents=True)
    for i in range(2):
        (root / "a" / f"{i}.jpg").write_bytes(b"not a jpeg")
    ds = ImageFolderDataset(root, image_size=8)
    # one process: the empty batch is dropped (with the warning)
    dl = build_loader(ds, 2, shuffle=False, mean=None, std=None, device="cpu", num_workers=0)
    with pytest.warns(UserWarning, match="skipped unreadable image"):
        assert list(dl) == []
    # data-parallel: a rank one step short would hang the others, so it fails loudly
    dl = build_loader(ds, 1, shuffle=True, mean=None, std=None, device="cpu", num_workers=0,
                      rank=1, world_size=2)
    with pytest.raises(DataError, match=r"rank 1: every image of batch 1 is unreadable"), \
            pytest.warns(UserWarning):
        list(dl)


def test_a_file_gone_since_the_scan_is_an_error_naming_it(tmp_path):
    ds = ImageFolderDataset(make_folder(tmp_path / "pets"), image_size=8)
    gone = ds.samples[0][0]
    os.remove(gone)
    img, label, err = ds[0]
    assert err == f"{gone}: no such image file" and label == 0
    assert img.shape == (3, 8, 8) and not img.any()
