"""The one download path (dataset files and model weights): a `.part` file beside the target,
resumed with an HTTP Range request when a connection drops, hashed while it streams, renamed
into place only once its hash is right.

    digest = download(url, cache_dir() / "weights" / "resnet50-0676ba61.pth", "0676ba61")

- A dropped connection is resumed from the bytes already received (`Range: bytes=N-`), a
  few times within one call; a server that ignores Range (200 instead of 206) starts over.
- With `keep_partial=True` (weights) the `.part` survives a failed call, so running again
  resumes it; with False (datasets) a failed call leaves nothing behind.
- The expected digest may be a prefix (torchvision publishes the first 8+ hex digits of the
  sha256 in each file name). A mismatch discards the file: ChecksumError names the URL, the
  expected and the actual digest.
- Two processes fetching the same file (DDP ranks) take turns on the `.part` (flock); the
  second finds the finished file and does not download it again.
- urllib only; a progress bar (tqdm) when stderr is a terminal.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

from cnnzoo.errors import CnnzooError
from cnnzoo.utils.io import _FILE_MODE

try:  # POSIX; elsewhere concurrent fetches of one file are not serialised
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

TIMEOUT = 30.0  # seconds per network read; a stalled server should not hang a run
RETRIES = 3  # resumes of a dropped connection within one call
_CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class DownloadError(CnnzooError):
    """A download that failed. `url`, `reason` (the cause alone), `partial` (a kept `.part`
    holding the bytes received so far, or None)."""

    def __init__(self, url: str, reason: str, partial: Path | None = None):
        self.url, self.reason, self.partial = url, reason, partial
        super().__init__(f"{url}: {reason}")


class ChecksumError(DownloadError):
    """The file arrived (or sat in a cache) with the wrong hash; it has been removed."""

    def __init__(self, url: str, algorithm: str, expected: str, actual: str, what="download"):
        self.algorithm, self.expected, self.actual = algorithm, expected, actual
        super().__init__(url, f"checksum mismatch ({algorithm} {actual}, expected {expected}); "
                         f"{'discarded' if what == 'download' else what}")


def cache_dir() -> Path:
    """The user cache: `$CNNZOO_CACHE`, else `$XDG_CACHE_HOME/cnnzoo`, else ~/.cache/cnnzoo."""
    if os.environ.get("CNNZOO_CACHE"):
        return Path(os.environ["CNNZOO_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "cnnzoo"


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def digest_matches(actual: str, expected: str | None) -> bool:
    """`expected` is the whole hex digest or a prefix of it (None: nothing to check)."""
    return expected is None or actual.lower().startswith(expected.lower())


def download(
    url: str,
    dest: str | os.PathLike,
    digest: str | None = None,
    *,
    algorithm: str = "sha256",
    keep_partial: bool = True,
    timeout: float = TIMEOUT,
    retries: int = RETRIES,
) -> str:
    """Fetch `url` to `dest` through `dest.part`; return the file's full hex digest.

    digest: the published digest or a prefix of it (at least 8 hex digits), or None when
    nothing is published (the caller records the returned digest itself).
    Raises ChecksumError (file discarded) or DownloadError (the `.part` kept for a later
    resume when `keep_partial` and some bytes arrived, named in `.partial`; else nothing is
    left behind).
    """
    if digest is not None and len(digest) < 8:
        raise ValueError(f"a digest prefix needs at least 8 hex digits, got {digest!r}")
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with _open_locked(part) as f:
            if dest.is_file():  # another process finished it while this one waited
                got = file_digest(dest, algorithm)
                if digest_matches(got, digest):
                    part.unlink()
                    return got
            s = _Stream(f, algorithm, resume=keep_partial)
            _fetch(url, s, timeout, retries, dest.name)
            got = s.hash.hexdigest()
            if not digest_matches(got, digest):
                raise ChecksumError(url, algorithm, digest, got)
            f.flush()
            os.fsync(f.fileno())
            os.replace(part, dest)  # still holding the lock: a waiter then finds dest
            return got
    except BaseException as e:
        err = e
        if isinstance(e, (urllib.error.URLError, OSError, http.client.HTTPException)):
            err = DownloadError(url, f"download failed: {e}")
        # The bytes received so far wait for the next call, unless they are wrong or unwanted.
        if (keep_partial and not isinstance(err, ChecksumError) and part.is_file()
                and part.stat().st_size > 0):
            if isinstance(err, DownloadError):
                err.partial = part
        else:
            with contextlib.suppress(OSError):  # e.g. its folder could not be created
                part.unlink()
        if err is e:
            raise
        raise err from e


def _open_locked(part: Path):
    """`part` opened for update, with an exclusive lock on the file the path still names."""
    while True:
        fd = os.open(part, os.O_RDWR | os.O_CREAT, _FILE_MODE)
        f = os.fdopen(fd, "r+b")
        if fcntl is None:
            return f
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits while another process downloads it
        try:
            if os.stat(part).st_ino == os.fstat(fd).st_ino:
                return f
        except FileNotFoundError:
            pass
        f.close()  # the holder renamed or removed it meanwhile: open the path afresh


class _Stream:
    """The `.part` file and the running hash of everything in it."""

    def __init__(self, f, algorithm: str, resume: bool):
        self.f, self.algorithm = f, algorithm
        self.hash = hashlib.new(algorithm)
        if resume:  # an earlier attempt's bytes count: hash them, append after them
            f.seek(0)
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                self.hash.update(chunk)
            self.size = f.tell()
        else:
            self.restart()

    def restart(self) -> None:
        self.f.seek(0)
        self.f.truncate()
        self.hash = hashlib.new(self.algorithm)
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.f.write(chunk)
        self.hash.update(chunk)
        self.size += len(chunk)


def _fetch(url: str, s: _Stream, timeout: float, retries: int, label: str) -> None:
    """Fill `s` with the whole of `url`, resuming a dropped connection up to `retries` times."""
    bar = None
    try:
        for attempt in range(retries + 1):
            r, total = _open(url, s, timeout)
            if r is None:  # the .part already holds the whole file
                return
            if bar is None and sys.stderr.isatty():
                from tqdm import tqdm

                bar = tqdm(total=total, initial=s.size, unit="B", unit_scale=True,
                           unit_divisor=1024, desc=label, leave=False)
            try:
                _copy(r, s, total, bar)
                return
            except (OSError, http.client.HTTPException) as e:
                if attempt == retries:
                    raise DownloadError(url, f"download interrupted ({s.size} of {total} "
                                        f"bytes; {e})") from None
    finally:
        if bar is not None:
            bar.close()


def _open(url: str, s: _Stream, timeout: float):
    """(response from byte `s.size` on, total file size or None if unknown); (None, size)
    when the server answers 416 for exactly the `.part`'s size: it is complete."""
    headers = {"Range": f"bytes={s.size}-"} if s.size else {}
    try:
        r = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code != 416 or not s.size:
            raise
        whole = re.fullmatch(r"bytes \*/(\d+)", e.headers.get("Content-Range", ""))
        e.close()
        if whole and int(whole.group(1)) == s.size:
            return None, s.size
        s.restart()  # the .part is not a prefix of this file
        return _open(url, s, timeout)
    if s.size and r.status == 206:
        m = _CONTENT_RANGE.fullmatch(r.headers.get("Content-Range", ""))
        if m and int(m.group(1)) == s.size:
            return r, (int(m.group(3)) if m.group(3) != "*" else None)
        r.close()  # a range we did not ask for: fetch the whole file instead
        s.restart()
        return _open(url, s, timeout)
    if s.size:  # the server ignored Range: it sends the file from byte 0
        s.restart()
    length = r.headers.get("Content-Length")
    return r, (int(length) if length is not None else None)


def _copy(r, s: _Stream, total: int | None, bar) -> None:
    """Stream the response into the `.part`; a body shorter than promised is a dropped
    connection (http.client returns what it got without raising)."""
    try:
        for chunk in iter(lambda: r.read(_CHUNK), b""):
            s.write(chunk)
            if bar is not None:
                bar.update(len(chunk))
    finally:
        r.close()
    if total is not None and s.size < total:
        raise ConnectionError("the server closed the connection")
