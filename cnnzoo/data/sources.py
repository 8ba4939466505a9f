"""Where dataset files come from: look in the user's folders, else download and verify.

Search order for each dataset (the first folder holding every file wins):
  1. `--data-dir` (the folder itself, or its `<name>/` sub-folder),
  2. `$CNNZOO_DATA/<name>/`,
  3. the user cache `$CNNZOO_CACHE` or `~/.cache/cnnzoo/<name>/`,
  4. known system folders (Debian's `dataset-fashion-mnist` installs
     `/usr/share/datasets/fashion-mnist/`),
  5. a download from the dataset's canonical source into the cache, checked against the
     published md5 (the values torchvision lists) before it is renamed into place.

Files found on disk are not md5-checked (Debian recompresses its gz files, so their md5s
differ from the published ones): the parsers validate every byte they read instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cnnzoo.errors import DataError
from cnnzoo.utils import download as _download
from cnnzoo.utils.download import TIMEOUT, cache_dir


@dataclass(frozen=True)
class Source:
    """One dataset's files: name -> md5 of the published file, and the mirrors serving them."""

    files: dict[str, str]
    mirrors: tuple[str, ...]
    system_dirs: tuple[str, ...] = ()
    homepage: str = ""
    # Files that also count when present in decoded form (e.g. an extracted archive folder).
    alternatives: dict[str, str] = field(default_factory=dict)


_MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
_FASHION_FILES = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}

# Overridable (tests point it at a local http.server).
SOURCES: dict[str, Source] = {
    "mnist": Source(
        files=_MNIST_FILES,
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        system_dirs=("/usr/share/datasets/mnist",),
        homepage="http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion-mnist": Source(
        files=_FASHION_FILES,
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        system_dirs=("/usr/share/datasets/fashion-mnist",),
        homepage="https://github.com/zalandoresearch/fashion-mnist",
    ),
    "cifar10": Source(
        files={"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"},
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
        system_dirs=("/usr/share/datasets/cifar10", "/usr/share/datasets/cifar-10"),
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
        alternatives={"cifar-10-python.tar.gz": "cifar-10-batches-py"},
    ),
    "cifar100": Source(
        files={"cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85"},
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
        system_dirs=("/usr/share/datasets/cifar100", "/usr/share/datasets/cifar-100"),
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
        alternatives={"cifar-100-python.tar.gz": "cifar-100-python"},
    ),
}


def candidate_dirs(name: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched for `name`'s files, in order."""
    dirs: list[Path] = []
    if data_dir is not None:
        d = Path(data_dir).expanduser()
        dirs += [d / name, d]
    if os.environ.get("CNNZOO_DATA"):
        dirs.append(Path(os.environ["CNNZOO_DATA"]).expanduser() / name)
    dirs.append(cache_dir() / name)
    dirs += [Path(p) for p in SOURCES[name].system_dirs]
    return dirs


def _present(folder: Path, fname: str, src: Source) -> bool:
    alt = src.alternatives.get(fname)
    if alt and (folder / alt).is_dir():
        return True
    # An IDX file may also sit there already gunzipped.
    return (folder / fname).is_file() or (
        fname.endswith(".gz") and (folder / fname[:-3]).is_file()
    )


def find_local(name: str, data_dir=None) -> Path | None:
    """The first candidate folder that holds every file of `name`, or None."""
    src = SOURCES[name]
    for d in candidate_dirs(name, data_dir):
        if all(_present(d, f, src) for f in src.files):
            return d
    return None


def download(url: str, dest: Path, md5: str, timeout: float = TIMEOUT) -> Path:
    """Fetch `url` to `dest` (cnnzoo.utils.download: a temp `.part`, resumed if the
    connection drops, renamed only when complete and md5-verified).

    A failed, interrupted or mismatching download leaves nothing behind; so does a cache
    folder that cannot be written (the error names it).
    """
    try:
        _download.download(url, dest, md5, algorithm="md5", keep_partial=False, timeout=timeout)
    except _download.DownloadError as e:
        raise DataError(str(e)) from e
    return dest


def _missing_message(name: str, data_dir, errors: list[str]) -> str:
    """Which files are missing, from the most complete folder searched, and where to put
    them (a dataset's files must all sit in one folder)."""
    src = SOURCES[name]
    dirs = candidate_dirs(name, data_dir)
    missing = {d: [f for f in src.files if not _present(d, f, src)] for d in dirs}
    best = min(dirs, key=lambda d: len(missing[d]))  # the first one on ties
    have = len(src.files) - len(missing[best])
    if have:
        what = (f"  missing files: {', '.join(missing[best])} (in {best}, which holds the "
                f"other {have})")
        put = f"  put them in {best}"
    else:
        what = f"  missing files: {', '.join(src.files)} (none found)"
        put = f"  put them in {cache_dir() / name} (or pass --data-dir DIR / set CNNZOO_DATA)"
    lines = [
        f"dataset '{name}' not found and could not be downloaded.",
        what,
        f"  looked in: {', '.join(str(d) for d in dirs)}",
        f"{put};",
        f"  they are published at {src.mirrors[0]} (see {src.homepage})",
    ]
    if errors:
        lines.append(f"  download error: {errors[-1]}")
    return "\n".join(lines)


def resolve(name: str, data_dir=None, download_ok: bool = True) -> Path:
    """The folder holding `name`'s files; downloads into the cache when none is found."""
    if name not in SOURCES:
        raise DataError(f"unknown dataset '{name}' (known: {', '.join(sorted(SOURCES))})")
    found = find_local(name, data_dir)
    if found is not None:
        return found
    src = SOURCES[name]
    if not download_ok:
        raise DataError(_missing_message(name, data_dir, ["downloads disabled"]))
    dest_dir = cache_dir() / name
    created = not dest_dir.exists()
    errors: list[str] = []
    for fname, md5 in src.files.items():
        if _present(dest_dir, fname, src):
            continue
        for mirror in src.mirrors:
            try:
                download(mirror + fname, dest_dir / fname, md5)
                break
            except DataError as e:
                errors.append(str(e))
        else:
            if created and dest_dir.is_dir() and not any(dest_dir.iterdir()):
                dest_dir.rmdir()  # leave no empty cache folder behind
            raise DataError(_missing_message(name, data_dir, errors))
    return dest_dir
