"""Where files come from: search order, and downloads from a local http.server on 127.0.0.1."""

import gzip
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest
from test_data_cifar import make_cifar_tar
from test_data_idx import idx_bytes, write_mnist

from cnnzoo.data import load_dataset, sources
from cnnzoo.data.sources import Source, cache_dir, resolve
from cnnzoo.errors import DataError


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict = {}
    truncate: set = set()

    def do_GET(self):  # noqa: N802 (http.server's naming)
        name = self.path.rsplit("/", 1)[-1]
        if name not in self.files:
            self.send_error(404)
            return
        # A broken mirror under /bad/: "200 OK" with an HTML page instead of the file.
        body = b"<html>moved</html>" if self.path.startswith("/bad/") else self.files[name]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        # An interrupted transfer: promise the whole file, send half, hang up.
        self.wfile.write(body[: len(body) // 2] if name in self.truncate else body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    handler = type("H", (_Handler,), {"files": {}, "truncate": set()})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield handler, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def _tiny_mnist_files():
    rng = np.random.default_rng(1)
    out = {}
    for prefix, n in (("train", 6), ("t10k", 3)):
        out[f"{prefix}-images-idx3-ubyte.gz"] = gzip.compress(
            idx_bytes(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)))
        out[f"{prefix}-labels-idx1-ubyte.gz"] = gzip.compress(
            idx_bytes(rng.integers(0, 10, n, dtype=np.uint8)))
    return out


def _serve(monkeypatch, handler, url, files, md5s=None):
    handler.files.update(files)
    md5s = md5s or {k: hashlib.md5(v).hexdigest() for k, v in files.items()}
    monkeypatch.setitem(sources.SOURCES, "mnist", Source(files=md5s, mirrors=(url,)))


def test_download_verified_and_installed(server, monkeypatch):
    handler, url = server
    files = _tiny_mnist_files()
    _serve(monkeypatch, handler, url, files)
    ds = load_dataset("mnist", "train")
    assert len(ds) == 6
    folder = cache_dir() / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(files)
    assert (folder / "t10k-labels-idx1-ubyte.gz").read_bytes() == files[
        "t10k-labels-idx1-ubyte.gz"]


def test_wrong_checksum_leaves_nothing(server, monkeypatch):
    handler, url = server
    files = _tiny_mnist_files()
    md5s = {k: hashlib.md5(v).hexdigest() for k, v in files.items()}
    md5s["train-labels-idx1-ubyte.gz"] = "0" * 32
    _serve(monkeypatch, handler, url, files, md5s)
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz: checksum mismatch"):
        load_dataset("mnist")
    names = [p.name for p in (cache_dir() / "mnist").iterdir()]
    assert "train-labels-idx1-ubyte.gz" not in names
    assert not [n for n in names if n.endswith(".tmp")]


def test_interrupted_download_leaves_nothing(server, monkeypatch):
    handler, url = server
    files = _tiny_mnist_files()
    _serve(monkeypatch, handler, url, files)
    handler.truncate.add("train-images-idx3-ubyte.gz")
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        load_dataset("mnist")
    assert not (cache_dir() / "mnist").exists()


def test_next_mirror_after_a_dead_and_a_bad_one(server, monkeypatch):
    handler, url = server
    files = _tiny_mnist_files()
    handler.files.update(files)
    md5s = {k: hashlib.md5(v).hexdigest() for k, v in files.items()}
    monkeypatch.setitem(sources.SOURCES, "mnist", Source(
        files=md5s, mirrors=(_dead_url(), url + "bad/", url)))
    assert len(load_dataset("mnist", "test")) == 3
    folder = cache_dir() / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(files)  # no temp files
    assert all((folder / k).read_bytes() == v for k, v in files.items())


def _serve_cifar(monkeypatch, handler, url, tmp_path, md5=None):
    make_cifar_tar(tmp_path / "src" / "cifar-10-python.tar.gz")
    blob = (tmp_path / "src" / "cifar-10-python.tar.gz").read_bytes()
    handler.files["cifar-10-python.tar.gz"] = blob
    src = sources.SOURCES["cifar10"]
    monkeypatch.setitem(sources.SOURCES, "cifar10", Source(
        files={"cifar-10-python.tar.gz": md5 or hashlib.md5(blob).hexdigest()},
        mirrors=(url,), alternatives=src.alternatives))
    return blob


def test_cifar_download_verified_then_extracted_into_the_cache(server, monkeypatch, tmp_path):
    handler, url = server
    blob = _serve_cifar(monkeypatch, handler, url, tmp_path)
    assert len(load_dataset("cifar10", "test")) == 4
    folder = cache_dir() / "cifar10"
    assert sorted(p.name for p in folder.iterdir()) == ["cifar-10-batches-py",
                                                        "cifar-10-python.tar.gz"]
    assert (folder / "cifar-10-python.tar.gz").read_bytes() == blob
    handler.files.clear()  # the second split comes from the cache, not the server
    assert len(load_dataset("cifar10", "train")) == 20


def test_cifar_wrong_checksum_leaves_nothing(server, monkeypatch, tmp_path):
    handler, url = server
    _serve_cifar(monkeypatch, handler, url, tmp_path, md5="0" * 32)
    with pytest.raises(DataError, match=r"cifar-10-python.tar.gz: checksum mismatch \(md5 "
                                        r"[0-9a-f]{32}, expected 0{32}\); discarded"):
        load_dataset("cifar10")
    assert not (cache_dir() / "cifar10").exists()


def test_unwritable_cache_is_one_clear_message(server, monkeypatch, tmp_path):
    handler, url = server
    _serve(monkeypatch, handler, url, _tiny_mnist_files())
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("CNNZOO_CACHE", str(blocker / "cache"))  # cannot be created
    with pytest.raises(DataError) as e:
        load_dataset("mnist")
    msg = str(e.value)
    assert "dataset 'mnist' not found" in msg and "download failed" in msg
    assert str(blocker / "cache") in msg
    assert blocker.read_text() == ""


def _dead_url() -> str:
    """A port nobody listens on, on this machine: connections are refused at once."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """MNIST's only mirror is dead."""
    monkeypatch.setitem(sources.SOURCES, "mnist", Source(
        files=dict(sources.SOURCES["mnist"].files), mirrors=(_dead_url(),),
        system_dirs=(str(tmp_path / "nope"),), homepage="http://example.invalid/"))


def test_no_network_gives_one_clear_message(offline, tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset("mnist", data_dir=tmp_path / "mine")
    msg = str(e.value)
    assert "dataset 'mnist' not found" in msg
    assert ("missing files: train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
            "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz (none found)") in msg
    assert f"put them in {cache_dir() / 'mnist'} (or pass --data-dir DIR" in msg
    assert str(tmp_path / "mine") in msg and str(cache_dir() / "mnist") in msg
    assert "download failed" in msg
    assert not (cache_dir() / "mnist").exists()


def test_no_network_names_only_the_missing_files(offline, tmp_path):
    mine = tmp_path / "mine"
    write_mnist(mine)
    (mine / "t10k-images-idx3-ubyte.gz").unlink()
    (mine / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as e:
        load_dataset("mnist", data_dir=mine)
    msg = str(e.value)
    missing = [line for line in msg.splitlines() if "missing files" in line]
    assert missing == ["  missing files: train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz "
                       f"(in {mine}, which holds the other 2)"]
    assert f"put them in {mine};" in msg
    assert sorted(p.name for p in mine.iterdir()) == ["t10k-labels-idx1-ubyte.gz",
                                                      "train-images-idx3-ubyte.gz"]
    assert not (cache_dir() / "mnist").exists()


def test_search_order(tmp_path, monkeypatch):
    for d in ("flag", "env", "cache"):
        write_mnist(tmp_path / d / "mnist")
    monkeypatch.setenv("CNNZOO_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("CNNZOO_CACHE", str(tmp_path / "cache"))
    assert resolve("mnist", tmp_path / "flag") == tmp_path / "flag/mnist"
    assert resolve("mnist") == tmp_path / "env/mnist"
    monkeypatch.delenv("CNNZOO_DATA")
    assert resolve("mnist") == tmp_path / "cache/mnist"


def test_system_folder_after_cache(tmp_path, monkeypatch):
    write_mnist(tmp_path / "sys")
    src = sources.SOURCES["mnist"]
    monkeypatch.setitem(sources.SOURCES, "mnist", Source(
        files=src.files, mirrors=src.mirrors, system_dirs=(str(tmp_path / "sys"),)))
    assert resolve("mnist", download_ok=False) == tmp_path / "sys"
    write_mnist(cache_dir() / "mnist")
    assert resolve("mnist", download_ok=False) == cache_dir() / "mnist"  # the cache first
    write_mnist(tmp_path / "env" / "mnist")
    monkeypatch.setenv("CNNZOO_DATA", str(tmp_path / "env"))
    assert resolve("mnist", download_ok=False) == tmp_path / "env/mnist"


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown dataset 'imagenet'"):
        load_dataset("imagenet")


def test_md5_table_matches_published():
    # Published values (torchvision's MNIST / FashionMNIST / CIFAR tables), all ten.
    assert {name: src.files for name, src in sources.SOURCES.items()} == {
        "mnist": {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        "fashion-mnist": {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        "cifar10": {"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"},
        "cifar100": {"cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85"},
    }
    assert Path("/usr/share/datasets/fashion-mnist") in [
        Path(p) for p in sources.SOURCES["fashion-mnist"].system_dirs]
