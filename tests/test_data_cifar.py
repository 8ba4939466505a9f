"""CIFAR archives: the real python-version layout, hostile pickles, escaping tar members."""

import codecs
import errno
import io
import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnzoo.data import cifar, load_dataset, sources
from cnnzoo.data.sources import Source, cache_dir
from cnnzoo.errors import DataError

C10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _batch(n, label_key, rng, num_classes):
    return {b"batch_label": b"training batch", b"data": rng.integers(
        0, 256, (n, 3072), dtype=np.uint8), label_key: rng.integers(
        0, num_classes, n).tolist(), b"filenames": [b"x.png"] * n}


def make_cifar_tar(path: Path, name="cifar10", n=4, extra: dict | None = None, seed=0):
    """A tiny archive with the real member names and dict layout (protocol-2 pickles)."""
    rng = np.random.default_rng(seed)
    if name == "cifar10":
        top = "cifar-10-batches-py"
        files = {f"data_batch_{i}": _batch(n, b"labels", rng, 10) for i in range(1, 6)}
        files["test_batch"] = _batch(n, b"labels", rng, 10)
        files["batches.meta"] = {b"label_names": [c.encode() for c in C10],
                                 b"num_cases_per_batch": n, b"num_vis": 3072}
    else:
        top = "cifar-100-python"
        files = {"train": _batch(n, b"fine_labels", rng, 100),
                 "test": _batch(n, b"fine_labels", rng, 100)}
        files["meta"] = {b"fine_label_names": [f"c{i}".encode() for i in range(100)],
                         b"coarse_label_names": [f"s{i}".encode() for i in range(20)]}
    blobs = {f"{top}/{k}": pickle.dumps(v, protocol=2) for k, v in files.items()}
    blobs.update(extra or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for member, data in blobs.items():
            if isinstance(data, tarfile.TarInfo):
                tar.addfile(data)
                continue
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return files


def test_cifar10_good_archive(tmp_path):
    files = make_cifar_tar(tmp_path / "cifar10/cifar-10-python.tar.gz")
    train = load_dataset("cifar10", "train", data_dir=tmp_path, download=False)
    test = load_dataset("cifar10", "test", data_dir=tmp_path, download=False)
    assert train.images.shape == (20, 3, 32, 32) and len(test) == 4
    assert train.classes == C10
    want = files["data_batch_1"][b"data"].reshape(-1, 3, 32, 32)
    assert torch.equal(train.images[:4], torch.from_numpy(want))
    assert train.labels[:4].tolist() == files["data_batch_1"][b"labels"]
    assert (tmp_path / "cifar10/cifar-10-batches-py/data_batch_5").is_file()


def test_cifar100_good_archive(tmp_path):
    files = make_cifar_tar(tmp_path / "cifar-100-python.tar.gz", "cifar100", n=6)
    ds = load_dataset("cifar100", "train", data_dir=tmp_path, download=False)
    assert len(ds) == 6 and ds.num_classes == 100 and ds.classes[3] == "c3"
    assert ds.labels.tolist() == files["train"][b"fine_labels"]


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def _leftovers(folder: Path):
    return sorted(p.name for p in folder.iterdir() if p.name != "cifar-10-python.tar.gz")


def test_pickle_that_runs_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = pickle.dumps({b"data": _Evil(), b"labels": [0]}, protocol=2)
    root = tmp_path / "cifar10"
    make_cifar_tar(root / "cifar-10-python.tar.gz",
                   extra={"cifar-10-batches-py/data_batch_3": evil})
    with pytest.raises(DataError, match=r"cifar-10-python.tar.gz: member 'cifar-10-batches-py/"
                                        r"data_batch_3': unsafe or corrupt pickle: refused to "
                                        r"load global '(posix|os)\.system'"):
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert not (tmp_path / "PWNED").exists()
    assert _leftovers(root) == []  # the freshly extracted folder was removed again


class _Reduce:
    """Pickles as an arbitrary call: (callable, args[, state])."""

    def __init__(self, *reduce):
        self.reduce = reduce

    def __reduce__(self):
        return self.reduce


_RECON = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's own _reconstruct


def _refused(tmp_path, blob, match, split="train", member="data_batch_1"):
    """An archive whose `member` is `blob`: loading fails naming it; nothing left behind."""
    root = tmp_path / "cifar10"
    make_cifar_tar(root / "cifar-10-python.tar.gz",
                   extra={f"cifar-10-batches-py/{member}": blob})
    with pytest.raises(DataError, match=rf"member 'cifar-10-batches-py/{member}': {match}"):
        load_dataset("cifar10", split, data_dir=tmp_path, download=False)
    assert _leftovers(root) == []


@pytest.mark.parametrize("reduce,match", [
    # numpy's _reconstruct with a shape it never writes: a bare MemoryError before.
    ((_RECON, (np.ndarray, (1 << 40,), b"b")),
     r"unsafe or corrupt pickle: refused _reconstruct\(\(1099511627776,\)"),
    # numpy.ndarray called as a constructor, allocating whatever shape it is given.
    ((np.ndarray, ((1 << 40,),)),
     "unsafe or corrupt pickle: refused to call numpy.ndarray directly"),
    # an allowed _reconstruct, then __setstate__ with an absurd shape.
    ((_RECON, (np.ndarray, (0,), b"b"), (1, (1 << 62, 8), np.dtype("u1"), False, b"\0" * 6)),
     "corrupt or hostile pickle: asks for an array too large for memory"),
    # _codecs.encode with any codec but latin1 (e.g. one that decompresses).
    ((codecs.encode, ("abc", "rot13")),
     r"unsafe or corrupt pickle: refused _codecs.encode\(\.\., 'rot13'\)"),
    ((codecs.encode, (b"x" * 10, "zlib_codec")),
     r"unsafe or corrupt pickle: refused _codecs.encode\(\.\., 'zlib_codec'\)"),
])
def test_hostile_numpy_and_codecs_calls_are_refused(tmp_path, reduce, match):
    blob = pickle.dumps({b"data": _Reduce(*reduce), b"labels": [0]}, protocol=2)
    _refused(tmp_path, blob, match)


def test_build_on_the_ndarray_stand_in_is_refused(tmp_path):
    # GLOBAL numpy.ndarray, then BUILD {'x': 1}: would set an attribute on a shared object.
    blob = (b"\x80\x02}(C\x04datacnumpy\nndarray\n}X\x01\x00\x00\x00xK\x01sb"
            b"C\x06labels]u.")
    _refused(tmp_path, blob, "corrupt or truncated pickle: AttributeError")
    assert not hasattr(cifar._NDARRAY, "x")


@pytest.mark.parametrize("member,obj,match", [
    ("data_batch_2", [1, 2], "expected a dict, got list"),
    ("data_batch_2", {b"data": np.zeros((3, 3072), np.uint8), b"labels": [0, 1]},
     r"b'labels' missing or not 3 labels"),
    ("data_batch_2", {b"data": np.zeros((3, 3072), np.float32), b"labels": [0, 1, 2]},
     r"b'data' must be uint8 \[N, 3072\], got float32 \(3, 3072\)"),
    ("batches.meta", {b"label_names": b"airplane"},
     "b'label_names' must be a list of class names"),
])
def test_bad_batch_layout_is_named(tmp_path, member, obj, match):
    _refused(tmp_path, pickle.dumps(obj, protocol=2), match, member=member)


def test_archive_without_the_batches_folder(tmp_path):
    root = tmp_path / "cifar10"
    root.mkdir()
    with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-python/readme.txt")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(DataError, match="cifar-10-python.tar.gz: no 'cifar-10-batches-py/' "
                                        "folder inside"):
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert _leftovers(root) == []


def _read_only(monkeypatch, folder: Path, code: int):
    """Creating anything in `folder` fails with `code` (root ignores chmod, so fake it)."""
    real = cifar.tempfile.mkdtemp

    def mkdtemp(*args, dir=None, **kw):
        if dir is not None and Path(dir) == folder:
            raise OSError(code, os.strerror(code), str(dir))
        return real(*args, dir=dir, **kw)

    monkeypatch.setattr(cifar, "tempfile", type("T", (), {"mkdtemp": staticmethod(mkdtemp)}))
    src = sources.SOURCES["cifar10"]
    monkeypatch.setitem(sources.SOURCES, "cifar10", Source(
        files=src.files, mirrors=src.mirrors, system_dirs=(str(folder),),
        alternatives=src.alternatives))


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS])
def test_read_only_system_folder_extracts_into_the_cache(tmp_path, monkeypatch, code):
    system = tmp_path / "usr-share"
    make_cifar_tar(system / "cifar-10-python.tar.gz")
    _read_only(monkeypatch, system, code)
    assert len(load_dataset("cifar10", "test", download=False)) == 4
    assert sorted(p.name for p in system.iterdir()) == ["cifar-10-python.tar.gz"]
    assert (cache_dir() / "cifar10/cifar-10-batches-py/data_batch_5").is_file()
    assert len(load_dataset("cifar10", "train", download=False)) == 20  # reuses the cache


def test_read_only_system_folder_with_a_bad_archive_leaves_no_cache_folder(tmp_path,
                                                                         monkeypatch):
    system = tmp_path / "usr-share"
    evil = pickle.dumps({b"data": _Evil(), b"labels": [0]}, protocol=2)
    make_cifar_tar(system / "cifar-10-python.tar.gz",
                   extra={"cifar-10-batches-py/test_batch": evil})
    _read_only(monkeypatch, system, errno.EROFS)
    with pytest.raises(DataError, match=rf"{system}/cifar-10-python.tar.gz: member "
                                        "'cifar-10-batches-py/test_batch': unsafe"):
        load_dataset("cifar10", download=False)
    assert not (cache_dir() / "cifar10").exists()


def test_unwritable_folder_for_another_reason_is_named(tmp_path, monkeypatch):
    system = tmp_path / "usr-share"
    make_cifar_tar(system / "cifar-10-python.tar.gz")
    _read_only(monkeypatch, system, errno.ENOSPC)
    with pytest.raises(DataError, match=rf"{system}: cannot extract cifar-10-python.tar.gz "
                                        "here: No space left on device"):
        load_dataset("cifar10", download=False)
    assert not (cache_dir() / "cifar10").exists()


def test_concurrent_extraction_uses_the_first_finished_copy(tmp_path, monkeypatch):
    """Two DDP ranks extract a fresh archive at once: the one renaming second finds the
    other's validated folder in place and uses it instead of failing."""
    root = tmp_path / "cifar10"
    make_cifar_tar(root / "cifar-10-python.tar.gz")
    real, other_rank = cifar.load_cifar, []

    def load_while_another_rank_finishes(folder, name, split, shown=str):
        if not other_rank:
            other_rank.append(1)
            cifar.extract(root / "cifar-10-python.tar.gz", root, name)  # it finishes first
        return real(folder, name, split, shown)

    monkeypatch.setattr(cifar, "load_cifar", load_while_another_rank_finishes)
    assert cifar.extract(root / "cifar-10-python.tar.gz", root, "cifar10") == (
        root / "cifar-10-batches-py")
    assert _leftovers(root) == ["cifar-10-batches-py"]  # no temp folder of either
    monkeypatch.undo()
    assert len(load_dataset("cifar10", "test", data_dir=tmp_path, download=False)) == 4


def test_object_arrays_are_refused(tmp_path):
    blob = pickle.dumps({b"data": np.array([1, "x"], dtype=object), b"labels": [0]}, protocol=2)
    _refused(tmp_path, blob, r"unsafe or corrupt pickle: refused dtype\('O'\) \(only plain")


def test_negative_label_is_reported_as_is(tmp_path):
    blob = pickle.dumps({b"data": np.zeros((3, 3072), np.uint8), b"labels": [4, -3, 12]},
                        protocol=2)
    _refused(tmp_path, blob, r"label -3 \(at index 1\) out of range 0\.\.9", split="test",
             member="test_batch")


def test_float_labels_are_refused(tmp_path):
    blob = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1.5, 2.0]},
                        protocol=2)
    _refused(tmp_path, blob, r"b'labels' are not integers \(got float64\)")


def test_bad_batch_of_the_other_split_never_reaches_the_cache(tmp_path, monkeypatch):
    """The archive sits in the user cache; its test_batch is hostile. Loading the *train*
    split fails naming that member, and the cache holds only the archive afterwards."""
    monkeypatch.chdir(tmp_path)
    folder = cache_dir() / "cifar10"
    evil = pickle.dumps({b"data": _Evil(), b"labels": [0]}, protocol=2)
    make_cifar_tar(folder / "cifar-10-python.tar.gz",
                   extra={"cifar-10-batches-py/test_batch": evil})
    with pytest.raises(DataError, match=r"cifar10/cifar-10-python.tar.gz: member "
                                        r"'cifar-10-batches-py/test_batch': unsafe"):
        load_dataset("cifar10", "train", download=False)
    assert sorted(p.name for p in folder.iterdir()) == ["cifar-10-python.tar.gz"]
    assert not (tmp_path / "PWNED").exists()


class _Py2Pickler(pickle._Pickler):
    """Writes every str and bytes as Python 2's cPickle wrote its `str` (BINSTRING), as in
    the published CIFAR batches; with encoding="bytes" they all load as bytes."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_str8(self, obj):
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = _save_str8
    dispatch[bytes] = _save_str8


def test_python2_style_batches_load(tmp_path):
    rng = np.random.default_rng(5)
    data = rng.integers(0, 256, (3, 3072), dtype=np.uint8)
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump({"batch_label": "testing batch 1 of 1", "data": data,
                                       "labels": [7, 0, 9], "filenames": ["a.png"] * 3})
    blob = buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    assert b"_codecs" not in blob and b"X" not in blob[:3]
    make_cifar_tar(tmp_path / "cifar10/cifar-10-python.tar.gz",
                   extra={"cifar-10-batches-py/test_batch": blob})
    ds = load_dataset("cifar10", "test", data_dir=tmp_path, download=False)
    assert ds.labels.tolist() == [7, 0, 9]
    assert torch.equal(ds.images, torch.from_numpy(data.reshape(3, 3, 32, 32)))


def test_protocol5_batches_load(tmp_path):
    data = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    blob = pickle.dumps({b"data": data, b"labels": np.array([1, 2])}, protocol=5)
    assert b"_frombuffer" in blob
    make_cifar_tar(tmp_path / "cifar10/cifar-10-python.tar.gz",
                   extra={"cifar-10-batches-py/test_batch": blob})
    ds = load_dataset("cifar10", "test", data_dir=tmp_path, download=False)
    assert ds.labels.tolist() == [1, 2] and torch.equal(ds.images.flatten(1),
                                                         torch.from_numpy(data))


def test_truncated_pickle(tmp_path):
    root = tmp_path / "cifar10"
    blob = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}, protocol=2)
    make_cifar_tar(root / "cifar-10-python.tar.gz",
                   extra={"cifar-10-batches-py/test_batch": blob[:-40]})
    with pytest.raises(DataError, match="member 'cifar-10-batches-py/test_batch': corrupt or "
                                        "truncated pickle"):
        load_dataset("cifar10", "test", data_dir=tmp_path, download=False)
    assert _leftovers(root) == []


def test_wrong_layout_is_named(tmp_path):
    root = tmp_path / "cifar10"
    blob = pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, protocol=2)
    make_cifar_tar(root / "cifar-10-python.tar.gz",
                   extra={"cifar-10-batches-py/test_batch": blob})
    with pytest.raises(DataError, match=r"member 'cifar-10-batches-py/test_batch': b'data' "
                                        r"must be uint8 \[N, 3072\], got uint8 \(2, 100\)"):
        load_dataset("cifar10", "test", data_dir=tmp_path, download=False)
    assert _leftovers(root) == []


@pytest.mark.parametrize("member", ["../evil.txt", "cifar-10-batches-py/../../evil.txt",
                                    "/tmp/cnnzoo-evil.txt"])
def test_archive_member_escaping_is_refused(tmp_path, member):
    root = tmp_path / "a" / "cifar10"
    make_cifar_tar(root / "cifar-10-python.tar.gz", extra={member: b"pwned"})
    with pytest.raises(DataError, match=rf"cifar-10-python.tar.gz: member '{member}' would "
                                        "escape"):
        load_dataset("cifar10", data_dir=tmp_path / "a", download=False)
    assert _leftovers(root) == []
    assert not (tmp_path / "a" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()
    assert not Path("/tmp/cnnzoo-evil.txt").exists()


def test_archive_symlink_is_refused(tmp_path):
    root = tmp_path / "cifar10"
    link = tarfile.TarInfo("cifar-10-batches-py/link")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    make_cifar_tar(root / "cifar-10-python.tar.gz", extra={"link": link})
    with pytest.raises(DataError, match="member 'cifar-10-batches-py/link' is a link"):
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert _leftovers(root) == []


def test_archive_hardlink_is_refused(tmp_path):
    root = tmp_path / "cifar10"
    link = tarfile.TarInfo("cifar-10-batches-py/hard")
    link.type, link.linkname = tarfile.LNKTYPE, "/etc/passwd"
    make_cifar_tar(root / "cifar-10-python.tar.gz", extra={"hard": link})
    with pytest.raises(DataError, match="cifar-10-python.tar.gz: member "
                                        "'cifar-10-batches-py/hard' is a link"):
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert _leftovers(root) == []


def test_truncated_archive(tmp_path):
    root = tmp_path / "cifar10"
    tgz = root / "cifar-10-python.tar.gz"
    make_cifar_tar(tgz)
    tgz.write_bytes(tgz.read_bytes()[:3000])
    with pytest.raises(DataError, match="cifar-10-python.tar.gz: corrupt or truncated archive"):
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert _leftovers(root) == []


def test_numpy1_module_names_as_in_the_published_files(tmp_path):
    # The real batches name numpy.core.multiarray._reconstruct (numpy 1.x spelling).
    blob = pickle.dumps({b"data": np.full((2, 3072), 7, np.uint8), b"labels": [3, 4]},
                        protocol=2).replace(b"cnumpy._core.multiarray\n",
                                            b"cnumpy.core.multiarray\n")
    assert b"cnumpy.core.multiarray\n" in blob
    make_cifar_tar(tmp_path / "cifar10/cifar-10-python.tar.gz",
                   extra={"cifar-10-batches-py/test_batch": blob})
    ds = load_dataset("cifar10", "test", data_dir=tmp_path, download=False)
    assert ds.labels.tolist() == [3, 4] and int(ds.images.max()) == 7
