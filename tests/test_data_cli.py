"""`cnnzoo data fetch|info`."""

from pathlib import Path

import pytest
from test_data_idx import write_mnist

from cnnzoo.cli import main

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


def test_fetch_with_data_dir(tmp_path, capsys):
    write_mnist(tmp_path / "mnist", n_train=12, n_test=5)
    assert main(["data", "fetch", "mnist", "--data-dir", str(tmp_path), "--no-download"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "mnist") in out and "train 12" in out and "test 5" in out


def test_fetch_missing_is_one_clear_error(tmp_path, capsys):
    assert main(["data", "fetch", "cifar10", "--data-dir", str(tmp_path), "--no-download"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnzoo data: error: dataset 'cifar10' not found")
    assert "cifar-10-python.tar.gz" in err and str(tmp_path) in err and "Traceback" not in err


def test_info_synthetic(capsys):
    assert main(["data", "info", "synthetic"]) == 0
    out = capsys.readouterr().out
    assert "train 2048" in out and "channel mean" in out and "class9" in out


@pytest.mark.skipif(not DEBIAN.is_dir(), reason="Debian's dataset-fashion-mnist not installed")
def test_fetch_fashion_mnist_no_flags(capsys):
    assert main(["data", "fetch", "fashion-mnist"]) == 0
    out = capsys.readouterr().out
    assert str(DEBIAN) in out and "train 60000" in out and "test 10000" in out
