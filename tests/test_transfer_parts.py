"""Transfer learning's parts: channel adaptation, the feature cache (reuse,
chunks, damage), the softmax trainer on features and its folding into a classifier."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

import cnnzoo
from cnnzoo.data.datasets import ArrayDataset
from cnnzoo.errors import ShapeError
from cnnzoo.models.backbone import UnknownLayerError
from cnnzoo.transfer.adapt import adapt_in_chans, adapt_stats, resize_images
from cnnzoo.transfer.body import VectorOf, stage_names
from cnnzoo.transfer.extract import extract
from cnnzoo.transfer.softmax import accuracy, fit_softmax


def toy(n=60, k=6, c=1, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % k
    images = torch.randint(0, 256, (n, c, size, size), generator=g, dtype=torch.uint8)
    return ArrayDataset(images, labels, [f"c{i}" for i in range(k)], "toy")


# --- channel adaptation -------------------------------------------------------------------

@pytest.mark.parametrize("name", ["lenet5", "resnet20"])
def test_rgb_network_on_grey_images_sums_the_first_conv(name):
    torch.manual_seed(0)
    rgb = cnnzoo.create_model(name, in_chans=3).eval()
    grey = cnnzoo.create_model(name, in_chans=3).eval()
    grey.load_state_dict(rgb.state_dict())
    note = adapt_in_chans(grey, 1)
    assert "summed" in note and grey.in_chans == 1
    g = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(grey(g), rgb(g.expand(-1, 3, -1, -1)), rtol=1e-5,
                                   atol=1e-5)
    assert adapt_in_chans(grey, 1) is None  # already fits


def test_grey_network_on_rgb_images_replicates_the_first_conv():
    torch.manual_seed(0)
    grey = cnnzoo.create_model("lenet5", in_chans=1).eval()
    rgb = cnnzoo.create_model("lenet5", in_chans=1).eval()
    rgb.load_state_dict(grey.state_dict())
    assert "replicated" in adapt_in_chans(rgb, 3)
    g = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(rgb(g.expand(-1, 3, -1, -1)), grey(g), rtol=1e-5,
                                   atol=1e-5)
    # the adapted network's weights load into the zoo network built for 3 channels
    cnnzoo.create_model("lenet5", in_chans=3).load_state_dict(rgb.state_dict())


def test_adapt_stats_and_bad_channel_counts():
    mean, std = adapt_stats([0.2, 0.4, 0.6], [0.1, 0.2, 0.3], 1)
    assert mean == pytest.approx([0.4]) and std == pytest.approx([0.2])
    assert adapt_stats([0.5], [0.2], 3) == ([0.5] * 3, [0.2] * 3)
    model = cnnzoo.create_model("lenet5", in_chans=3)
    with pytest.raises(ShapeError, match="only 1 <-> N"):
        adapt_in_chans(model, 2)


def test_resize_images_in_chunks_matches_one_pass():
    x = torch.randint(0, 256, (10, 1, 28, 28), dtype=torch.uint8)
    one = resize_images(x, (32, 32), chunk=100)
    assert one.shape == (10, 1, 32, 32) and one.dtype == torch.uint8
    assert torch.equal(resize_images(x, (32, 32), chunk=3), one)


# --- layers and vectors -------------------------------------------------------------------

def test_vectors_of_pre_logits_and_named_layers():
    model = cnnzoo.create_model("lenet5").eval()
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        pre = VectorOf(model, "pre_logits")(x)
        assert pre.shape == (3, 84)
        torch.testing.assert_close(model.get_classifier()(pre), model(x))
        assert VectorOf(model, "c3", "avg")(x).shape == (3, 16)
        assert VectorOf(model, "c3", "flatten")(x).shape == (3, 16 * 10 * 10)
    with pytest.raises(UnknownLayerError, match="no layer .c9.; closest: .*c1.*; stages: s2, s4"):
        VectorOf(model, "c9")
    assert stage_names(model) == list(model.stage_names)


# --- the feature cache --------------------------------------------------------------------

class Counting:
    """Counts the batches the network's first layer sees (any way of running it does)."""

    def __init__(self, model):
        self.calls = 0
        model.c1.register_forward_pre_hook(self._count)

    def _count(self, *_):
        self.calls += 1


def _extract(model, ds, tmp_path, **kw):
    kw = {"source_sha256": "abc", "split": "train", "mean": [0.5], "std": [0.25],
          "cache_dir": tmp_path / "cache", "batch_size": 16, **kw}
    return extract(model, ds, **kw)


def test_cache_second_run_reads_instead_of_recomputing(tmp_path):
    torch.manual_seed(0)
    model = cnnzoo.create_model("lenet5", num_classes=6).eval()
    counter = Counting(model)
    ds = toy(n=50, size=28)
    fs, reused = _extract(model, ds, tmp_path)
    assert not reused and counter.calls == 4  # ceil(50 / 16) batches
    fs2, reused = _extract(model, ds, tmp_path)
    assert reused and counter.calls == 4, "the second run must not run the network"
    x1 = np.concatenate([x for x, _ in fs.chunks()])
    assert np.array_equal(x1, np.concatenate([x for x, _ in fs2.chunks()]))
    # the vectors are the network's: pre-logits of normalised images
    with torch.no_grad():
        want = VectorOf(model)((ds.images.float() / 255 - 0.5) / 0.25)
    np.testing.assert_allclose(x1, want.numpy(), rtol=1e-5, atol=1e-5)
    assert np.array_equal(fs.labels(), ds.labels.numpy())
    # any part of the key changes the key
    for change in ({"split": "test"}, {"layer": "c5"}, {"mean": [0.4]},
                   {"source_sha256": "abd"}):
        _, reused = _extract(model, ds, tmp_path, **change)
        assert not reused, change
    ds.images[0, 0, 0, 0] ^= 1  # the same name and size, other content
    _, reused = _extract(model, ds, tmp_path)
    assert not reused


def test_cache_is_written_in_chunks_smaller_than_the_dataset(tmp_path):
    model = cnnzoo.create_model("lenet5", num_classes=6).eval()
    ds = toy(n=50, size=28)
    fs, _ = _extract(model, ds, tmp_path, chunk=20, batch_size=7)
    shards = sorted(fs.root.glob("shard_*[0-9].npy"))
    assert [np.load(p, mmap_mode="r").shape for p in shards] == [(20, 84), (20, 84), (10, 84)]
    assert [len(x) for x, _ in fs.chunks()] == [20, 20, 10]
    assert not list((tmp_path / "cache").glob(".tmp-*")), "the temp folder was renamed"
    out, labels = fs.write_npy(tmp_path / "feats.npy")
    assert np.load(out).shape == (50, 84) and np.array_equal(np.load(labels), ds.labels)


def test_damaged_cache_is_made_again_and_a_failed_one_leaves_nothing(tmp_path):
    model = cnnzoo.create_model("lenet5", num_classes=6).eval()
    ds = toy(n=30, size=28)
    fs, _ = _extract(model, ds, tmp_path, chunk=10)
    fs.files[1].unlink()
    fs2, reused = _extract(model, ds, tmp_path, chunk=10)
    assert not reused and len(fs2.files) == 3 and fs2.files[1].exists()

    class Boom(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    broken = cnnzoo.create_model("lenet5", num_classes=6)
    broken.f6 = Boom()
    with pytest.raises(RuntimeError, match="boom"):
        _extract(broken, ds, tmp_path, source_sha256="other")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [fs2.root.name]


# --- softmax on features ------------------------------------------------------------------

def test_softmax_on_features_learns_and_folds_its_standardisation(tmp_path):
    torch.manual_seed(0)
    model = cnnzoo.create_model("lenet5", num_classes=6).eval()
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(120) % 3
    means = torch.tensor([40.0, 128.0, 220.0])[labels]  # three brightness classes
    images = (means.view(-1, 1, 1, 1) + 15 * torch.randn(120, 1, 28, 28, generator=g))
    ds = ArrayDataset(images.clamp(0, 255).to(torch.uint8), labels, ["a", "b", "c"], "bright")
    tr, va = ds.split(0.25, seed=0)
    fs_tr, _ = _extract(model, tr, tmp_path, chunk=32)
    fs_va, _ = _extract(model, va, tmp_path, split="val")
    res = fit_softmax(fs_tr, fs_va, 3, epochs=30, seed=0)
    assert res.best_val_acc == max(h["val_acc"] for h in res.history)
    assert res.best_val_acc > 0.9 and accuracy(fs_va, res.weight, res.bias) == res.best_val_acc
    # folded into the network's head: the network itself now gives those scores
    model.reset_classifier(3)
    with torch.no_grad():
        model.get_classifier().weight.copy_(res.weight)
        model.get_classifier().bias.copy_(res.bias)
        x = (va.images.float() / 255 - 0.5) / 0.25
        pred = model(x).argmax(1)
    assert (pred == va.labels).float().mean().item() == pytest.approx(res.best_val_acc)
