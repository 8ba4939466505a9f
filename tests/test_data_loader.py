"""In-memory loader: normalisation, exact resume from (seed, epoch), sharding, prefetch."""

import time

import pytest
import torch

from cnnzoo.data import ArrayDataset, build_augment, build_loader, load_dataset, shard_order
from cnnzoo.errors import DataError


def tiny(n=50, c=3, hw=8):
    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (n, c, hw, hw), generator=g, dtype=torch.uint8)
    return ArrayDataset(imgs, torch.arange(n) % 10, [str(i) for i in range(10)], "tiny")


def run_epoch(loader):
    return [(x.clone(), y.clone()) for x, y in loader]


def test_normalised_values_and_labels():
    ds = tiny()
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    dl = build_loader(ds, 16, shuffle=False, mean=mean, std=std, device="cpu")
    batches = run_epoch(dl)
    assert len(dl) == len(batches) == 4 and [len(y) for _, y in batches] == [16, 16, 16, 2]
    x = torch.cat([b[0] for b in batches])
    want = (ds.images.float() / 255 - torch.tensor(mean)[:, None, None]) / torch.tensor(
        std)[:, None, None]
    assert x.dtype == torch.float32 and torch.allclose(x, want, atol=1e-6)
    assert torch.equal(torch.cat([b[1] for b in batches]), ds.labels)


def test_resume_at_epoch_boundary_reproduces_batches():
    ds = tiny()
    aug = build_augment("flip,crop:2,color:0.1", (8, 8), 3)
    kw = dict(shuffle=True, augment=aug, mean=[0.5] * 3, std=[0.25] * 3, device="cpu", seed=3)
    first = build_loader(ds, 8, **kw)
    epochs = [run_epoch(first) for _ in range(3)]  # epochs 0, 1, 2 (auto-advancing)
    resumed = build_loader(ds, 8, **kw)
    resumed.set_epoch(2)
    again = run_epoch(resumed)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
               for a, b in zip(epochs[2], again))
    assert not torch.equal(epochs[0][0][1], epochs[1][0][1])  # order changes per epoch
    other_seed = build_loader(ds, 8, **{**kw, "seed": 4})
    assert not torch.equal(run_epoch(other_seed)[0][0], epochs[0][0][0])


def test_prefetch_and_inline_give_identical_batches():
    ds = tiny(100)
    aug = build_augment("flip,crop:2", (8, 8), 3)
    kw = dict(shuffle=True, augment=aug, mean=None, std=None, device="cpu", seed=1)
    a = run_epoch(build_loader(ds, 7, prefetch=True, chunk=3, **kw))
    b = run_epoch(build_loader(ds, 7, prefetch=False, chunk=3, **kw))
    assert len(a) == len(b) == 15 and [len(y) for _, y in a][-2:] == [7, 2]
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b))


@pytest.mark.parametrize("n,world,drop_last", [(50, 4, False), (50, 4, True), (48, 3, False)])
def test_sharding_disjoint_covering_equal(n, world, drop_last):
    shards = [shard_order(n, shuffle=True, seed=5, epoch=2, rank=r, world_size=world,
                          drop_last=drop_last) for r in range(world)]
    assert len({len(s) for s in shards}) == 1  # equal length per rank
    allidx = torch.cat(shards)
    if drop_last or n % world == 0:
        assert len(set(allidx.tolist())) == len(allidx)  # disjoint
    if not drop_last:
        assert set(allidx.tolist()) == set(range(n))  # covering
        assert len(allidx) - n < world  # at most world-1 wrapped duplicates
    # the loaders agree with shard_order and with each other's lengths
    ds = tiny(n)
    loaders = [build_loader(ds, 5, shuffle=True, mean=None, std=None, device="cpu", seed=5,
                            rank=r, world_size=world, drop_last=drop_last) for r in range(world)]
    for r, dl in enumerate(loaders):
        dl.set_epoch(2)
        ys = torch.cat([y for _, y in dl])
        assert torch.equal(ys, ds.labels[shards[r][: len(ys)]])
    assert len({len(dl) for dl in loaders}) == 1


@pytest.mark.parametrize("n,world", [(50, 4), (48, 3), (49, 2), (3, 4)])
def test_eval_sharding_counts_every_sample_exactly_once(n, world):
    shards = [shard_order(n, shuffle=False, seed=5, epoch=0, rank=r, world_size=world)
              for r in range(world)]
    allidx = torch.cat(shards).tolist()
    assert sorted(allidx) == list(range(n))  # no duplicates, nothing missing
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    # what the ranks' loaders yield, summed as a DDP evaluation sums it
    ds = tiny(n)
    ds.labels = torch.arange(n)  # label = sample id
    seen = []
    for r in range(world):
        dl = build_loader(ds, 4, shuffle=False, mean=None, std=None, device="cpu", rank=r,
                          world_size=world)
        ys = [y for _, y in dl]
        assert len(ys) == len(dl)
        seen += torch.cat(ys).tolist() if ys else []
    assert sorted(seen) == list(range(n))


def test_training_shards_stay_equal_when_n_below_world():
    shards = [shard_order(3, shuffle=True, seed=0, epoch=0, rank=r, world_size=4)
              for r in range(4)]
    assert [len(s) for s in shards] == [1] * 4 and set(torch.cat(shards).tolist()) == {0, 1, 2}


def test_bad_rank():
    with pytest.raises(DataError, match="rank 2 outside world_size 2"):
        build_loader(tiny(), 4, shuffle=True, mean=None, std=None, device="cpu", rank=2,
                     world_size=2)


def test_augment_runs_on_whole_chunks_of_batches():
    """No per-sample work: one augmentation call per chunk of `chunk` batches."""
    calls = []

    def record(x, g):
        calls.append(tuple(x.shape))
        return x

    for prefetch in (False, True):
        calls.clear()
        dl = build_loader(tiny(100), 10, shuffle=True, augment=record, mean=None, std=None,
                          device="cpu", chunk=4, prefetch=prefetch)
        assert [len(y) for _, y in run_epoch(dl)] == [10] * 10
        assert calls == [(40, 3, 8, 8), (40, 3, 8, 8), (20, 3, 8, 8)]


def test_wait_time_counts_a_slow_producer():
    ds = tiny()

    def slow(x, g):
        time.sleep(0.02)
        return x

    dl = build_loader(ds, 10, shuffle=False, augment=slow, mean=None, std=None, device="cpu",
                      chunk=1)  # one augment call per batch
    run_epoch(dl)
    assert dl.wait_time >= 0.05  # 5 batches x 20 ms, mostly waited for


def test_early_break_stops_the_thread():
    import threading

    dl = build_loader(tiny(500), 4, shuffle=True, mean=None, std=None, device="cpu")
    for i, _ in enumerate(dl):
        if i == 2:
            break
    time.sleep(0.05)
    assert not [t for t in threading.enumerate() if t.name == "cnnzoo-prefetch"]


def test_producer_error_reaches_consumer():
    def broken(x, g):
        raise DataError("augment exploded")

    dl = build_loader(tiny(), 4, shuffle=True, augment=broken, mean=None, std=None,
                      device="cpu")
    with pytest.raises(DataError, match="augment exploded"):
        run_epoch(dl)


def test_channels_last():
    dl = build_loader(tiny(), 4, shuffle=False, mean=None, std=None, device="cpu",
                      channels_last=True)
    x, _ = next(iter(dl))
    assert x.is_contiguous(memory_format=torch.channels_last)


def _ids(ds):
    return (ds.images[:, 0, 0, 0].long() + 256 * ds.images[:, 0, 0, 1].long()).tolist()


def test_split_deterministic_disjoint_stratified():
    ds = load_dataset("synthetic", num_samples=300)
    ids = torch.arange(300)
    ds.images[:, 0, 0, 0], ds.images[:, 0, 0, 1] = ids % 256, ids // 256  # unique id per image
    a_tr, a_val = ds.split(0.2, seed=1)
    b_tr, b_val = ds.split(0.2, seed=1)
    assert _ids(a_val) == _ids(b_val) and len(a_val) == 60 and len(a_tr) == 240
    assert set(_ids(a_tr)).isdisjoint(_ids(a_val))
    assert sorted(_ids(a_tr) + _ids(a_val)) == list(range(300))
    assert _ids(ds.split(0.2, seed=2)[1]) != _ids(a_val)
    tr, val = ds.split(0.2, seed=1, stratify=True)
    assert sorted(_ids(tr) + _ids(val)) == list(range(300))
    counts, vcounts = ds.labels.bincount(minlength=10), val.labels.bincount(minlength=10)
    assert ((vcounts - 0.2 * counts).abs() <= 0.5).all()


def test_channel_stats_match_direct_computation():
    ds = tiny(40)
    mean, std = ds.channel_stats()
    x = ds.images.double() / 255
    assert torch.allclose(torch.tensor(mean, dtype=torch.float64), x.mean((0, 2, 3)))
    assert torch.allclose(torch.tensor(std, dtype=torch.float64),
                          x.transpose(0, 1).flatten(1).std(1, correction=0))


def test_synthetic_is_learnable_signal():
    tr, te = load_dataset("synthetic"), load_dataset("synthetic", "test")
    assert tr.images.shape == (2048, 3, 32, 32) and len(te) == 512
    # nearest class-mean classifier beats chance by far: the classes carry signal
    means = torch.stack([tr.images[tr.labels == c].float().mean(0) for c in range(10)])
    d = torch.cdist(te.images.float().flatten(1), means.flatten(1))
    assert (d.argmin(1) == te.labels).float().mean() > 0.9
