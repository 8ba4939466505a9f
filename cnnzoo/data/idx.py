"""IDX files (MNIST, Fashion-MNIST), gzipped or raw, validated before a byte is trusted.

Format (LeCun's MNIST page): two zero bytes, a type code (0x08 = unsigned byte), the number
of dimensions, then one big-endian int32 per dimension, then the data.

The file is read as a stream: the header comes first and fixes the exact size, so a
decompression bomb (a small .gz claiming, or holding, gigabytes) is refused after at most
the header's size plus one read buffer, never inflated in full.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from cnnzoo.errors import DataError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
# zlib's documented bound on deflate's expansion: no .gz of n bytes inflates past 1032 n.
_DEFLATE_MAX_RATIO = 1032
# Far above any IDX dataset (the largest EMNIST file is ~0.7 GB); a header claiming more is
# corrupt or hostile, and refused before any allocation.
MAX_IDX_BYTES = 1 << 34
_CHUNK = 1 << 22


def _read(stream: BinaryIO, n: int, path: Path) -> bytearray:
    """Up to `n` bytes (fewer only at the end of the data), in bounded chunks, so memory
    grows with what the file really holds, not with what its header claims."""
    out = bytearray()
    try:
        while len(out) < n:
            chunk = stream.read(min(_CHUNK, n - len(out)))
            if not chunk:
                break
            out += chunk
    except EOFError as e:  # the stream ended before the gzip trailer
        raise DataError(f"{path}: truncated gzip file ({e})") from e
    except (gzip.BadGzipFile, zlib.error) as e:  # bad header, CRC or length mismatch
        raise DataError(f"{path}: corrupt gzip file ({e})") from e
    return out


def _parse(stream: BinaryIO, path: Path, max_size: int, exact_size: int | None) -> np.ndarray:
    head = _read(stream, 4, path)
    if len(head) < 4:
        raise DataError(f"{path}: too short for an IDX header ({len(head)} bytes)")
    code, ndim = head[2], head[3]
    if head[:2] != b"\x00\x00" or code not in _DTYPES or not 1 <= ndim <= 4:
        raise DataError(f"{path}: bad IDX magic number 0x{head.hex()} (not an IDX file)")
    header = 4 + 4 * ndim
    head += _read(stream, header - 4, path)
    if len(head) < header:
        raise DataError(f"{path}: truncated IDX header ({len(head)} of {header} bytes)")
    dims = tuple(int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[code])
    # math.prod: exact Python ints (np.prod wraps around int64 for hostile dims).
    expected = header + math.prod(dims) * dtype.itemsize
    says = f"{path}: IDX header says dims {dims} ({expected} bytes)"
    if expected > MAX_IDX_BYTES:
        raise DataError(f"{says}, more than the {MAX_IDX_BYTES}-byte limit (corrupt header)")
    if exact_size is not None and exact_size != expected:
        raise DataError(f"{says} but the file has {exact_size} bytes "
                        f"({'truncated' if exact_size < expected else 'trailing data'})")
    if expected > max_size:
        raise DataError(f"{says} but a file of this size holds at most {max_size} bytes "
                        "(truncated or corrupt)")
    data = _read(stream, expected - header, path)
    if len(data) < expected - header:
        raise DataError(f"{says} but the file holds only {header + len(data)} bytes "
                        "(truncated)")
    # One byte more: trailing data shows here, and for gzip this read reaches the trailer,
    # whose CRC and length checks catch a corrupt stream.
    if _read(stream, 1, path):
        raise DataError(f"{says} but the file holds more (trailing data)")
    arr = np.frombuffer(data, dtype=dtype).reshape(dims)  # writable: `data` is a bytearray
    return arr.astype(dtype.newbyteorder("="), copy=False)  # native byte order


def read_idx(path: str | Path) -> np.ndarray:
    """Parse one IDX file into an array, checking the magic and that dims match the size."""
    path = Path(path)
    if not path.is_file() and path.suffix == ".gz" and path.with_suffix("").is_file():
        path = path.with_suffix("")  # accept an already gunzipped copy
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            magic = f.read(2)
            f.seek(0)
            if magic == b"\x1f\x8b":
                with gzip.GzipFile(fileobj=f, mode="rb") as z:
                    return _parse(z, path, _DEFLATE_MAX_RATIO * size, None)
            if path.suffix == ".gz":
                raise DataError(
                    f"{path}: not a gzip file (bad gzip magic {magic.hex() or 'empty'})")
            return _parse(f, path, size, size)
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from e


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
