"""CIFAR-10 / CIFAR-100 python-version archives, read without executing any code.

The batches are Python pickles of `{b"data": uint8 [N, 3072], b"labels": [...]}`. A pickle
can name any callable, so we unpickle with a restricted `find_class` that admits only the
numpy reconstructors an ndarray needs; the tarball is extracted member by member, refusing
absolute paths, `..`, links and devices, into a temp folder renamed only when complete.
"""

from __future__ import annotations

import io
import pickle
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

import numpy as np

from cnnzoo.errors import DataError

FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
ARCHIVES = {"cifar10": "cifar-10-python.tar.gz", "cifar100": "cifar-100-python.tar.gz"}
SPLIT_FILES = {
    ("cifar10", "train"): [f"data_batch_{i}" for i in range(1, 6)],
    ("cifar10", "test"): ["test_batch"],
    ("cifar100", "train"): ["train"],
    ("cifar100", "test"): ["test"],
}
META = {"cifar10": ("batches.meta", b"label_names"), "cifar100": ("meta", b"fine_label_names")}
LABEL_KEY = {"cifar10": b"labels", "cifar100": b"fine_labels"}

# The only globals a numpy-array pickle needs (numpy 1.x and 2.x spellings; `_codecs.encode`
# is how protocol-2 pickles written by Python 3 carry bytes).
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load global '{module}.{name}'")


def read_batch(path: Path) -> dict:
    """One CIFAR pickle as a dict with bytes keys, through the restricted unpickler."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from e
    try:
        obj = _RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except pickle.UnpicklingError as e:
        raise DataError(f"{path}: unsafe or corrupt pickle: {e}") from e
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
        raise DataError(f"{path}: corrupt or truncated pickle: {e!r}") from e
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a dict, got {type(obj).__name__}")
    return obj


def _read_images(path: Path, label_key: bytes, num_classes: int):
    d = read_batch(path)
    data, labels = d.get(b"data"), d.get(label_key)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or (
        data.shape[1] != 3 * 32 * 32
    ):
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: b'data' must be uint8 [N, 3072], got {got}")
    if not isinstance(labels, (list, np.ndarray)) or len(labels) != len(data):
        raise DataError(f"{path}: {label_key!r} missing or not {len(data)} labels")
    try:
        y = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError) as e:
        raise DataError(f"{path}: {label_key!r} are not integers") from e
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(f"{path}: label {int(y.max())} out of range 0..{num_classes - 1}")
    return data.reshape(-1, 3, 32, 32), y


def read_classes(folder: Path, name: str) -> list[str]:
    fname, key = META[name]
    d = read_batch(folder / fname)
    names = d.get(key)
    if not isinstance(names, list) or not all(isinstance(n, (bytes, str)) for n in names):
        raise DataError(f"{folder / fname}: {key!r} must be a list of class names")
    return [n.decode("utf-8") if isinstance(n, bytes) else n for n in names]


def load_cifar(folder: Path, name: str, split: str):
    """(images uint8 [N,3,32,32], labels int64 [N], classes) from an extracted folder."""
    classes = read_classes(folder, name)
    xs, ys = [], []
    for f in SPLIT_FILES[(name, split)]:
        x, y = _read_images(folder / f, LABEL_KEY[name], len(classes))
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys), classes


def _check_member(m: tarfile.TarInfo, archive: Path) -> None:
    p = PurePosixPath(m.name)
    if p.is_absolute() or ".." in p.parts or m.name.startswith(("/", "\\")):
        raise DataError(f"{archive}: member '{m.name}' would escape the extraction folder")
    if not (m.isfile() or m.isdir()):
        raise DataError(f"{archive}: member '{m.name}' is a link or device; refused")


def extract(archive: Path, dest_parent: Path, name: str) -> Path:
    """Extract `archive` so that `dest_parent/FOLDERS[name]` appears complete or not at all."""
    target = dest_parent / FOLDERS[name]
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=dest_parent))
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                members = tar.getmembers()
                for m in members:
                    _check_member(m, archive)
                # Members are vetted above; the "data" filter re-checks (Python >= 3.12).
                kw = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tar.extractall(tmp, members=members, **kw)
        except (tarfile.TarError, EOFError, OSError) as e:
            raise DataError(f"{archive}: corrupt or truncated archive: {e}") from e
        if not (tmp / FOLDERS[name]).is_dir():
            raise DataError(f"{archive}: no '{FOLDERS[name]}/' folder inside")
        (tmp / FOLDERS[name]).rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def cifar_folder(root: Path, name: str) -> tuple[Path, bool]:
    """(extracted batches folder under `root`, whether we just extracted it)."""
    folder = root / FOLDERS[name]
    if folder.is_dir():
        return folder, False
    try:
        return extract(root / ARCHIVES[name], root, name), True
    except PermissionError:  # a read-only system folder: extract into the user cache
        from cnnzoo.data.sources import cache_dir

        dest = cache_dir() / name
        dest.mkdir(parents=True, exist_ok=True)
        if (dest / FOLDERS[name]).is_dir():
            return dest / FOLDERS[name], False
        return extract(root / ARCHIVES[name], dest, name), True


def load_from_root(root: Path, name: str, split: str):
    """Extract if needed and load; a folder we just extracted is removed again if any batch
    in it turns out corrupt or hostile, so no bad cache entry stays behind."""
    folder, fresh = cifar_folder(root, name)
    try:
        return load_cifar(folder, name, split)
    except DataError:
        if fresh:
            shutil.rmtree(folder, ignore_errors=True)
        raise
