"""IDX / gzip parsing (MNIST, Fashion-MNIST): good files, each bad case, the real Debian copy."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnzoo.data import load_dataset
from cnnzoo.data.idx import read_idx
from cnnzoo.data.sources import cache_dir
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


def _expect_bad(tmp_path, name, content: bytes, match: str):
    """read_idx refuses the file with a message naming it, and writes nothing anywhere."""
    folder = tmp_path / "in"
    folder.mkdir()
    p = folder / name
    p.write_bytes(content)
    with pytest.raises(DataError, match=match) as e:
        read_idx(p)
    assert str(p) in str(e.value)
    assert list(folder.iterdir()) == [p] and p.read_bytes() == content
    assert not any(cache_dir().rglob("*"))  # nothing cached
    return e.value


def test_truncated_gzip(tmp_path):
    good = gzip.compress(idx_bytes(np.zeros((10, 28, 28), np.uint8)) + b"")
    _expect_bad(tmp_path, "t.gz", good[: len(good) // 2], r"t\.gz: truncated gzip")


def test_corrupt_gzip_crc(tmp_path):
    good = bytearray(gzip.compress(idx_bytes(np.zeros((4, 28, 28), np.uint8))))
    good[-6] ^= 0xFF  # flip a CRC byte in the trailer
    _expect_bad(tmp_path, "c.gz", bytes(good), r"c\.gz: corrupt gzip.*CRC")


def test_not_gzip_at_all(tmp_path):
    _expect_bad(tmp_path, "n.gz", b"hello world, no gzip here", r"n\.gz: not a gzip file")


@pytest.mark.parametrize("magic", [
    b"\x50\x4b\x03\x04",  # a zip file's magic
    b"\x00\x00\x07\x03",  # an unknown type code
    b"\x00\x00\x08\x00",  # no dimensions
    b"\x00\x00\x08\x09",  # more dimensions than any IDX file has
])
def test_wrong_magic(tmp_path, magic):
    raw = bytearray(idx_bytes(np.zeros((3, 28, 28), np.uint8)))
    raw[0:4] = magic
    _expect_bad(tmp_path, "m.gz", gzip.compress(bytes(raw)),
                rf"m\.gz: bad IDX magic number 0x{magic.hex()} \(not an IDX file\)")


def test_header_larger_than_file(tmp_path):
    raw = idx_bytes(np.zeros((3, 28, 28), np.uint8))
    raw = raw[:4] + struct.pack(">I", 60000) + raw[8:]  # claims 60000 images, holds 3
    _expect_bad(tmp_path, "h.gz", gzip.compress(raw),
                r"h\.gz: IDX header says dims \(60000, 28, 28\).*truncated")


def test_header_larger_than_data_within_gzip_bound(tmp_path):
    # Claims 5 images, holds 3: small enough that only reading the data can tell.
    raw = idx_bytes(np.zeros((3, 28, 28), np.uint8))
    raw = raw[:4] + struct.pack(">I", 5) + raw[8:]
    _expect_bad(tmp_path, "s.gz", gzip.compress(raw),
                r"s\.gz: IDX header says dims \(5, 28, 28\) \(3936 bytes\) but the file "
                r"holds only 2368 bytes \(truncated\)")


def test_raw_file_size_checked_against_header(tmp_path):
    raw = idx_bytes(np.zeros((3, 2, 2), np.uint8))
    _expect_bad(tmp_path, "r-idx3-ubyte", raw[:-1],
                r"r-idx3-ubyte: IDX header says dims \(3, 2, 2\) \(28 bytes\) but the file "
                r"has 27 bytes \(truncated\)")


def test_trailing_data(tmp_path):
    raw = idx_bytes(np.zeros((3, 2, 2), np.uint8)) + b"extra"
    _expect_bad(tmp_path, "x.gz", gzip.compress(raw), r"x\.gz: .*\(trailing data\)")


@pytest.mark.parametrize("gz", [True, False])
def test_dims_whose_product_overflows_int64(tmp_path, gz):
    # np.prod wraps these dims around to 2**32 (it looks like a plausible 4 GiB); the exact
    # product is ~1.8e19 bytes, refused from the header alone.
    raw = struct.pack(">BBBB4I", 0, 0, 0x08, 4, 65536, 42008576, 6700417, 1) + bytes(64)
    _expect_bad(tmp_path, "o.gz" if gz else "o-idx4-ubyte", gzip.compress(raw) if gz else raw,
                r"IDX header says dims \(65536, 42008576, 6700417, 1\) "
                r"\(18446744078004518932 bytes\), more than the \d+-byte limit")


def test_gzip_bomb_is_refused_without_inflating_it(tmp_path):
    """A valid header for 10 images followed by 50 MB of zeros, compressed to ~50 kB: the
    parser stops one byte past the header's size, it never holds the 50 MB."""
    import tracemalloc

    folder = tmp_path / "in"
    folder.mkdir()
    p = folder / "bomb.gz"
    zeros = bytes(1 << 20)
    with gzip.open(p, "wb") as z:
        z.write(idx_bytes(np.zeros((10, 28, 28), np.uint8)))
        for _ in range(50):
            z.write(zeros)
    del zeros
    assert p.stat().st_size < 200_000
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"bomb\.gz: IDX header says dims \(10, 28, 28\) "
                                            r"\(7856 bytes\) but the file holds more "
                                            r"\(trailing data\)"):
            read_idx(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"peak {peak} bytes: the bomb was inflated"
    assert list(folder.iterdir()) == [p] and not any(cache_dir().rglob("*"))


def test_label_count_mismatch_names_file(tmp_path):
    write_mnist(tmp_path / "mnist")
    y = np.zeros(7, np.uint8)  # 7 labels for 12 images
    (tmp_path / "mnist/train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(y)))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz: 7 labels for 12 images"):
        load_dataset("mnist", data_dir=tmp_path, download=False)
    assert not any(cache_dir().rglob("*"))


@pytest.mark.parametrize("fname,content,match", [
    ("train-labels-idx1-ubyte.gz", idx_bytes(np.array([3, 10, 1] * 4, np.uint8)),
     r"train-labels-idx1-ubyte.gz: label 10 out of range 0\.\.9"),
    ("train-images-idx3-ubyte.gz", idx_bytes(np.zeros(12, np.uint8)),  # a labels file
     r"train-images-idx3-ubyte.gz: expected uint8 images \[N,H,W\], got uint8 \(12,\)"),
    ("train-labels-idx1-ubyte.gz", idx_bytes(np.zeros((12, 28, 28), np.uint8)),
     r"train-labels-idx1-ubyte.gz: expected uint8 labels \[N\], got uint8 \(12, 28, 28\)"),
    ("train-images-idx3-ubyte.gz", struct.pack(">BBBB3I", 0, 0, 0x0D, 3, 12, 2, 2)
     + np.zeros((12, 2, 2), ">f4").tobytes(),
     r"train-images-idx3-ubyte.gz: expected uint8 images \[N,H,W\], got float32"),
])
def test_valid_idx_with_the_wrong_content_is_named(tmp_path, fname, content, match):
    write_mnist(tmp_path / "mnist")
    (tmp_path / "mnist" / fname).write_bytes(gzip.compress(content))
    with pytest.raises(DataError, match=match):
        load_dataset("mnist", data_dir=tmp_path, download=False)
    assert not any(cache_dir().rglob("*"))


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
