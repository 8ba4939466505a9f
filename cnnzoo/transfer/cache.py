"""The feature cache: a frozen body's feature vectors of a dataset, on disk in chunks.

    CACHE/features/<key>/meta.json             n, dim, classes, the key's parts, the shards
    CACHE/features/<key>/shard_00000.npy       float32 [<= chunk, dim]
    CACHE/features/<key>/shard_00000.labels.npy  int64 [<= chunk]

The key is a sha256 of what decides the vectors: the source weights' sha256, the layer and
pooling, the dataset (name with its class subset, split, size, a fingerprint of its content)
and the preprocessing (normalisation, image size, channel adaptation). A rerun with the same
parts reads the shards instead of running the network.

Extraction holds one chunk of vectors in memory at a time; the shards go into a temp
folder, renamed to <key> only when complete, so a killed run never leaves a half cache that
a later one would trust. A reader re-checks every shard's shape against meta.json.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from cnnzoo.errors import CnnzooError

VERSION = 1
_STALE = 6 * 3600  # seconds after which a temp folder is a killed run's leftover


def dataset_fingerprint(ds) -> str:
    """sha256 of a dataset's content: the images and labels of an in-memory set, or the
    paths, sizes, modification times and labels of an image folder's files."""
    h = hashlib.sha256()
    if hasattr(ds, "samples"):
        for path, label in ds.samples:
            st = os.stat(path)
            h.update(f"{path}|{st.st_size}|{st.st_mtime_ns}|{label}\n".encode())
    else:
        h.update(ds.images.contiguous().numpy().tobytes())
        h.update(ds.labels.contiguous().numpy().tobytes())
    return h.hexdigest()


def cache_key(parts: dict) -> str:
    return hashlib.sha256(json.dumps({"v": VERSION, **parts}, sort_keys=True)
                          .encode()).hexdigest()[:32]


class FeatureSet:
    """Cached vectors, read shard by shard (memory-mapped): never all at once."""

    def __init__(self, root: Path, meta: dict):
        self.root, self.meta = Path(root), meta
        self.n, self.dim = meta["n"], meta["dim"]
        self.classes = meta["classes"]

    @classmethod
    def open(cls, root: Path) -> FeatureSet | None:
        """The cache at `root`, or None if it is missing or does not match its meta.json."""
        try:
            meta = json.loads((Path(root) / "meta.json").read_text(encoding="utf-8"))
            for s in meta["shards"]:
                x = np.load(Path(root) / s["file"], mmap_mode="r")
                y = np.load(Path(root) / s["labels"], mmap_mode="r")
                if x.shape != (s["n"], meta["dim"]) or y.shape != (s["n"],):
                    return None
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            return None
        return cls(root, meta)

    @property
    def files(self) -> list[Path]:
        return [self.root / s["file"] for s in self.meta["shards"]]

    def chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(vectors float32 [n_i, dim] memory-mapped, labels int64 [n_i]) shard by shard."""
        for s in self.meta["shards"]:
            yield (np.load(self.root / s["file"], mmap_mode="r"),
                   np.load(self.root / s["labels"]))

    def labels(self) -> np.ndarray:
        return np.concatenate([y for _, y in self.chunks()]) if self.n else np.zeros(0, int)

    def write_npy(self, path: Path) -> tuple[Path, Path]:
        """All vectors as one .npy [n, dim] (+ PATH.labels.npy), filled shard by shard into
        a memory-mapped temp file renamed into place."""
        from cnnzoo.utils.io import atomic_path

        path = Path(path)
        labels_path = path.with_name(path.stem + ".labels.npy")
        with atomic_path(path) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32,
                                            shape=(self.n, self.dim))
            i = 0
            for x, _ in self.chunks():
                out[i:i + len(x)] = x
                i += len(x)
            out.flush()
            del out
            with atomic_path(labels_path) as tmp_labels, open(tmp_labels, "wb") as f:
                np.save(f, self.labels())
        return path, labels_path


def _save(path: Path, a: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, a)


def _clean_stale(root: Path) -> None:
    now = time.time()
    for d in root.glob(".tmp-*"):
        try:
            if now - d.stat().st_mtime > _STALE:
                shutil.rmtree(d, ignore_errors=True)
        except OSError:
            pass


def cached_features(root: str | os.PathLike, parts: dict, classes: list[str],
                    compute: Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]],
                    chunk: int = 8192) -> tuple[FeatureSet, bool]:
    """(the features keyed by `parts`, whether they were read from the cache). On a miss
    `compute()` yields (vectors [b, dim], labels [b]) batches, written `chunk` rows a shard."""
    if chunk < 1:
        raise CnnzooError(f"--chunk must be >= 1, got {chunk}")
    root = Path(root)
    final = root / cache_key(parts)
    found = FeatureSet.open(final)
    if found is not None:
        return found, True
    if final.exists():  # damaged (a shard deleted or truncated): made again
        shutil.rmtree(final, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    _clean_stale(root)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=root))
    try:
        shards: list[dict] = []
        dim, buf, buf_y, held = None, [], [], 0

        def flush(rows: int) -> None:
            nonlocal buf, buf_y, held
            x = np.concatenate(buf)
            y = np.concatenate(buf_y)
            name = f"shard_{len(shards):05d}"
            _save(tmp / f"{name}.npy", np.ascontiguousarray(x[:rows], dtype=np.float32))
            _save(tmp / f"{name}.labels.npy", y[:rows].astype(np.int64))
            shards.append({"file": f"{name}.npy", "labels": f"{name}.labels.npy", "n": rows})
            buf, buf_y = ([x[rows:]], [y[rows:]]) if rows < len(x) else ([], [])
            held = len(x) - rows

        for vec, lab in compute():
            vec = vec.detach().float().cpu().numpy()
            dim = vec.shape[1] if dim is None else dim
            buf.append(vec)
            buf_y.append(np.asarray(torch.as_tensor(lab).cpu().numpy(), dtype=np.int64))
            held += len(vec)
            while held >= chunk:
                flush(chunk)
        if held:
            flush(held)
        n = sum(s["n"] for s in shards)
        meta = {"n": n, "dim": dim or 0, "classes": list(classes), "chunk": chunk,
                "shards": shards, "key": parts, "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n",
                                       encoding="utf-8")
        try:
            os.replace(tmp, final)  # a folder onto a missing or empty one: atomic
        except OSError:  # another process finished the same key first: theirs is as good
            if FeatureSet.open(final) is None:
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return FeatureSet.open(final), False
