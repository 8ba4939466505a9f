"""IDX / gzip parsing (MNIST, Fashion-MNIST): good files, each bad case, the real Debian copy."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnzoo.data import load_dataset
from cnnzoo.data.idx import read_idx
from cnnzoo.errors import DataError

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


def idx_bytes(arr: np.ndarray) -> bytes:
    return struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(
        f">{arr.ndim}I", *arr.shape) + arr.astype(np.uint8).tobytes()


def write_mnist(folder: Path, n_train=12, n_test=5, seed=0):
    """Tiny MNIST-format files, exactly as published (gzip'd IDX)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    data = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, n, dtype=np.uint8)
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(x)))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(y)))
        data[prefix] = (x, y)
    return data


def test_good_files_load_through_public_api(tmp_path):
    data = write_mnist(tmp_path / "mnist")
    ds = load_dataset("mnist", "train", data_dir=tmp_path, download=False)
    x, y = data["train"]
    assert ds.images.shape == (12, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert torch.equal(ds.images[:, 0], torch.from_numpy(x))
    assert torch.equal(ds.labels, torch.from_numpy(y).long())
    test = load_dataset("mnist", "test", data_dir=tmp_path / "mnist", download=False)
    assert len(test) == 5 and test.classes == [str(i) for i in range(10)]


def test_raw_ungzipped_idx_is_accepted(tmp_path):
    x = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    p = tmp_path / "a-idx3-ubyte"
    p.write_bytes(idx_bytes(x))
    assert np.array_equal(read_idx(p), x)


def _bad(tmp_path, name, content: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(content)
    return p


def test_truncated_gzip(tmp_path):
    good = gzip.compress(idx_bytes(np.zeros((10, 28, 28), np.uint8)) + b"")
    p = _bad(tmp_path, "t.gz", good[: len(good) // 2])
    with pytest.raises(DataError, match=r"t\.gz: truncated gzip"):
        read_idx(p)


def test_corrupt_gzip_crc(tmp_path):
    good = bytearray(gzip.compress(idx_bytes(np.zeros((4, 28, 28), np.uint8))))
    good[-6] ^= 0xFF  # flip a CRC byte in the trailer
    with pytest.raises(DataError, match=r"c\.gz: corrupt gzip.*CRC"):
        read_idx(_bad(tmp_path, "c.gz", bytes(good)))


def test_not_gzip_at_all(tmp_path):
    with pytest.raises(DataError, match=r"n\.gz: not a gzip file"):
        read_idx(_bad(tmp_path, "n.gz", b"hello world, no gzip here"))


def test_wrong_magic(tmp_path):
    raw = bytearray(idx_bytes(np.zeros((3, 28, 28), np.uint8)))
    raw[0:4] = b"\x50\x4b\x03\x04"  # a zip file's magic
    with pytest.raises(DataError, match=r"m\.gz: bad IDX magic number 0x504b0304"):
        read_idx(_bad(tmp_path, "m.gz", gzip.compress(bytes(raw))))


def test_header_larger_than_file(tmp_path):
    raw = idx_bytes(np.zeros((3, 28, 28), np.uint8))
    raw = raw[:4] + struct.pack(">I", 60000) + raw[8:]  # claims 60000 images, holds 3
    msg = r"h\.gz: IDX header says dims \(60000, 28, 28\).*truncated"
    with pytest.raises(DataError, match=msg):
        read_idx(_bad(tmp_path, "h.gz", gzip.compress(raw)))


def test_trailing_data(tmp_path):
    raw = idx_bytes(np.zeros((3, 2, 2), np.uint8)) + b"extra"
    with pytest.raises(DataError, match="trailing data"):
        read_idx(_bad(tmp_path, "x.gz", gzip.compress(raw)))


def test_label_count_mismatch_names_file(tmp_path):
    write_mnist(tmp_path / "mnist")
    y = np.zeros(7, np.uint8)  # 7 labels for 12 images
    (tmp_path / "mnist/train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(y)))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz: 7 labels for 12 images"):
        load_dataset("mnist", data_dir=tmp_path, download=False)


def test_bad_file_leaves_cache_untouched(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("CNNZOO_CACHE", str(cache))
    write_mnist(cache / "mnist")
    p = cache / "mnist/train-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:100])
    before = sorted(q.name for q in (cache / "mnist").iterdir())
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        load_dataset("mnist", download=False)
    assert sorted(q.name for q in (cache / "mnist").iterdir()) == before


@pytest.mark.skipif(not DEBIAN.is_dir(), reason="Debian's dataset-fashion-mnist not installed")
def test_real_fashion_mnist_from_debian_folder_no_flags():
    train = load_dataset("fashion-mnist")
    test = load_dataset("fashion-mnist", "test")
    assert train.images.shape == (60000, 1, 28, 28) and len(test) == 10000
    assert train.classes == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                             "Shirt", "Sneaker", "Bag", "Ankle boot"]
    assert train.labels.bincount().tolist() == [6000] * 10
    assert test.labels.bincount().tolist() == [1000] * 10
