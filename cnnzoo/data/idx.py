"""IDX files (MNIST, Fashion-MNIST), gzipped or raw, validated before a byte is trusted.

Format (LeCun's MNIST page): two zero bytes, a type code (0x08 = unsigned byte), the number
of dimensions, then one big-endian int32 per dimension, then the data.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from cnnzoo.errors import DataError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        if path.suffix == ".gz":
            raise DataError(f"{path}: not a gzip file (bad gzip magic {raw[:2].hex() or 'empty'})")
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError as e:  # the stream ended before the gzip trailer
        raise DataError(f"{path}: truncated gzip file ({e})") from e
    except (gzip.BadGzipFile, zlib.error) as e:  # bad header, CRC or length mismatch
        raise DataError(f"{path}: corrupt gzip file ({e})") from e


def read_idx(path: str | Path) -> np.ndarray:
    """Parse one IDX file into an array, checking the magic and that dims match the size."""
    path = Path(path)
    if not path.is_file() and path.suffix == ".gz" and path.with_suffix("").is_file():
        path = path.with_suffix("")  # accept an already gunzipped copy
    try:
        data = _read_bytes(path)
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from e
    if len(data) < 4:
        raise DataError(f"{path}: too short for an IDX header ({len(data)} bytes)")
    zero, code, ndim = data[0:2], data[2], data[3]
    if zero != b"\x00\x00" or code not in _DTYPES or not 1 <= ndim <= 4:
        raise DataError(f"{path}: bad IDX magic number 0x{data[:4].hex()} (not an IDX file)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header ({len(data)} of {header} bytes)")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[code])
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise DataError(
            f"{path}: IDX header says dims {dims} ({expected} bytes) but the file has "
            f"{len(data)} bytes ({'truncated' if len(data) < expected else 'trailing data'})"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))  # a writable, native-order copy


def load_idx_pair(images: Path, labels: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images [N,1,H,W] uint8 and labels [N] int64 from matching IDX files, cross-checked."""
    x, y = read_idx(images), read_idx(labels)
    if x.ndim != 3 or x.dtype != np.uint8:
        raise DataError(f"{images}: expected uint8 images [N,H,W], got {x.dtype} {x.shape}")
    if y.ndim != 1 or y.dtype != np.uint8:
        raise DataError(f"{labels}: expected uint8 labels [N], got {y.dtype} {y.shape}")
    if len(x) != len(y):
        raise DataError(f"{labels}: {len(y)} labels for {len(x)} images in {images.name}")
    if len(y) and int(y.max()) >= num_classes:
        raise DataError(f"{labels}: label {int(y.max())} out of range 0..{num_classes - 1}")
    return x[:, None], y.astype(np.int64)
