"""CIFAR-10 / CIFAR-100 python-version archives, read without executing any code.

The batches are Python pickles of `{b"data": uint8 [N, 3072], b"labels": [...]}`. A pickle
can name any callable, so we unpickle with a restricted `find_class` that admits only the
numpy reconstructors an ndarray needs, each behind a guard that accepts only the arguments
numpy itself writes. The tarball is extracted member by member, refusing absolute paths,
`..`, links and devices, into a temp folder; every batch of both splits is parsed there,
and the folder is renamed into place only when all of it is valid.
"""

from __future__ import annotations

import errno
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

# What numpy and pickle really write for these files (numpy 1.x and 2.x module spellings):
#   _reconstruct(ndarray, (0,), b"b") then __setstate__((1, shape, dtype, fortran, raw))
#   dtype("u1", False, True)                (Python 2 wrote 0, 1 and byte strings)
#   _frombuffer(buf, dtype, shape, order)   (protocol 5)
#   _codecs.encode(text, "latin1")          (bytes in a protocol-2 pickle from Python 3)
# Each admitted global is a guard that accepts only those argument forms: numpy's own
# functions would otherwise allocate whatever shape a hostile file names.


class _NdarrayToken:
    """Stands for numpy.ndarray: only ever an argument of `_reconstruct`, never called."""

    __slots__ = ()  # no __dict__: a pickle's BUILD cannot set attributes on this singleton

    def __call__(self, *args, **kwargs):
        raise pickle.UnpicklingError("refused to call numpy.ndarray directly")


_NDARRAY = _NdarrayToken()


def _guard(ok: bool, what: str) -> None:
    if not ok:
        raise pickle.UnpicklingError(f"refused {what}")


def _reconstruct(subtype, shape, typecode):
    _guard(subtype is _NDARRAY and type(shape) is tuple and shape == (0,)
           and isinstance(typecode, (str, bytes)) and typecode in (b"b", "b"),
           f"_reconstruct({shape!r:.60}, {typecode!r:.20}): numpy writes only ((0,), 'b')")
    return np.ndarray((0,), np.int8)  # empty; __setstate__ checks size against its data


def _plain_dtype(dt) -> np.dtype:
    _guard(isinstance(dt, np.dtype) and not dt.hasobject,
           f"{dt!r:.60} (only plain, object-free dtypes)")
    return dt


def _dtype(code, align=False, copy=True):
    _guard(isinstance(code, (str, bytes)) and len(code) <= 8
           and all(type(f) in (bool, int) and f in (0, 1) for f in (align, copy)),
           f"dtype({code!r:.30})")
    return _plain_dtype(np.dtype(code.decode("ascii") if isinstance(code, bytes) else code))


def _frombuffer(buf, dtype, shape, order):
    _guard(isinstance(buf, (bytes, bytearray)) and order in ("C", "F", b"C", b"F")
           and isinstance(shape, tuple) and all(type(n) is int for n in shape),
           "_frombuffer arguments")
    order = order.decode() if isinstance(order, bytes) else order
    return np.frombuffer(buf, dtype=_plain_dtype(dtype)).reshape(shape, order=order)


def _encode(text, encoding):
    _guard(isinstance(text, str) and encoding == "latin1", f"_codecs.encode(.., {encoding!r:.20})")
    return text.encode("latin1")


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _encode,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        raise pickle.UnpicklingError(f"refused to load global '{module}.{name}'")


def read_batch(path: Path, shown: str | None = None) -> dict:
    """One CIFAR pickle as a dict with bytes keys, through the restricted unpickler.
    `shown` is how messages name the file (default: its path)."""
    shown = shown or str(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"{shown}: cannot read: {e.strerror or e}") from e
    try:
        obj = _RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except pickle.UnpicklingError as e:
        raise DataError(f"{shown}: unsafe or corrupt pickle: {e}") from e
    except MemoryError as e:  # numpy's __setstate__ for an absurd shape
        raise DataError(f"{shown}: corrupt or hostile pickle: asks for an array too large "
                        f"for memory ({e or 'MemoryError'})") from e
    except Exception as e:  # noqa: BLE001 - anything else the bytes provoke is corruption
        raise DataError(f"{shown}: corrupt or truncated pickle: {e!r:.200}") from e
    if not isinstance(obj, dict):
        raise DataError(f"{shown}: expected a dict, got {type(obj).__name__}")
    return obj


def _read_images(path: Path, label_key: bytes, num_classes: int, shown: str | None = None):
    shown = shown or str(path)
    d = read_batch(path, shown)
    data, labels = d.get(b"data"), d.get(label_key)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or (
        data.shape[1] != 3 * 32 * 32
    ):
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{shown}: b'data' must be uint8 [N, 3072], got {got}")
    if not isinstance(labels, (list, np.ndarray)) or len(labels) != len(data):
        raise DataError(f"{shown}: {label_key!r} missing or not {len(data)} labels")
    try:
        y = np.asarray(labels)
    except (TypeError, ValueError, OverflowError) as e:
        raise DataError(f"{shown}: {label_key!r} are not integers") from e
    if y.dtype.kind not in "iu":  # floats or objects would be silently truncated
        raise DataError(f"{shown}: {label_key!r} are not integers (got {y.dtype})")
    y = y.astype(np.int64)
    bad = np.flatnonzero((y < 0) | (y >= num_classes))
    if len(bad):
        raise DataError(f"{shown}: label {int(y[bad[0]])} (at index {int(bad[0])}) out of "
                        f"range 0..{num_classes - 1}")
    return data.reshape(-1, 3, 32, 32), y


def read_classes(folder: Path, name: str, shown=str) -> list[str]:
    fname, key = META[name]
    d = read_batch(folder / fname, shown(folder / fname))
    names = d.get(key)
    if not isinstance(names, list) or not all(isinstance(n, (bytes, str)) for n in names):
        raise DataError(f"{shown(folder / fname)}: {key!r} must be a list of class names")
    try:
        return [n.decode("utf-8") if isinstance(n, bytes) else n for n in names]
    except UnicodeDecodeError as e:
        raise DataError(f"{shown(folder / fname)}: class names are not UTF-8") from e


def load_cifar(folder: Path, name: str, split: str, shown=str):
    """(images uint8 [N,3,32,32], labels int64 [N], classes) from an extracted folder.
    `shown(path)` names a file in messages."""
    classes = read_classes(folder, name, shown)
    xs, ys = [], []
    for f in SPLIT_FILES[(name, split)]:
        x, y = _read_images(folder / f, LABEL_KEY[name], len(classes), shown(folder / f))
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
    """Extract `archive` so that `dest_parent/FOLDERS[name]` appears complete or not at all:
    every batch of both splits is parsed in the temp folder before it is renamed into place,
    so a corrupt or hostile member never reaches the cache."""
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

        def shown(p: Path) -> str:
            return f"{archive}: member '{p.relative_to(tmp).as_posix()}'"

        for split in ("train", "test"):
            load_cifar(tmp / FOLDERS[name], name, split, shown)
        try:
            (tmp / FOLDERS[name]).rename(target)
        except OSError as e:
            # Another process (a DDP rank) renamed its validated copy first: use that one.
            if not target.is_dir():
                raise DataError(f"{target}: cannot create: {e.strerror or e}") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


_READ_ONLY = (errno.EACCES, errno.EPERM, errno.EROFS)


def cifar_folder(root: Path, name: str) -> Path:
    """The extracted batches folder under `root` (extracted and validated if needed)."""
    folder = root / FOLDERS[name]
    if folder.is_dir():
        return folder
    try:
        return extract(root / ARCHIVES[name], root, name)
    except OSError as e:  # a read-only system folder or mount: extract into the user cache
        if e.errno not in _READ_ONLY:
            raise DataError(f"{root}: cannot extract {ARCHIVES[name]} here: "
                            f"{e.strerror or e}") from e
        from cnnzoo.data.sources import cache_dir

        dest = cache_dir() / name
        if (dest / FOLDERS[name]).is_dir():
            return dest / FOLDERS[name]
        created = not dest.exists()
        try:
            dest.mkdir(parents=True, exist_ok=True)
            return extract(root / ARCHIVES[name], dest, name)
        except (DataError, OSError) as e2:
            if created:
                shutil.rmtree(dest, ignore_errors=True)  # no empty cache folder left
            if isinstance(e2, DataError):
                raise
            raise DataError(f"{dest}: cannot extract {ARCHIVES[name]} into the cache ({root} "
                            f"is read-only): {e2.strerror or e2}") from e2


def load_from_root(root: Path, name: str, split: str):
    """Extract if needed (see `extract`: nothing invalid is ever renamed into place), load."""
    return load_cifar(cifar_folder(root, name), name, split)
