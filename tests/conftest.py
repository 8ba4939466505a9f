import os

import pytest
import torch

# Tests must not depend on the user's data cache or environment.
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test gets its own cnnzoo cache folder, so nothing leaks between tests."""
    cache = tmp_path_factory.mktemp("cnnzoo-cache")
    monkeypatch.setenv("CNNZOO_CACHE", str(cache))
    monkeypatch.delenv("CNNZOO_DATA", raising=False)
    yield


@pytest.fixture(autouse=True, scope="session")
def _threads():
    # Two cores here: keep intra-op threads fixed so timings and results are stable; under
    # pytest-xdist (`make test` runs one worker per core) each worker takes one.
    cores = max(1, min(2, os.cpu_count() or 1))
    torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else cores)
