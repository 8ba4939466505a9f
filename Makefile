# Two set-up commands, each working on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev

.PHONY: demo test test-fast lint bench data browser casestudies clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml requirements-pinned.txt
	$(BIN)/pip install -q -r requirements-pinned.txt
	$(BIN)/pip install -q -c requirements-pinned.txt -e .
	touch $@

$(DEVSTAMP): $(STAMP)
	$(BIN)/pip install -q -c requirements-pinned.txt -e '.[dev]'
	touch $@

# Fashion-MNIST: the Debian package when apt is usable, else cnnzoo downloads and verifies it.
data: $(STAMP)
	@if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) || echo "apt failed: cnnzoo will download Fashion-MNIST"; \
	fi
	$(BIN)/cnnzoo data fetch fashion-mnist

# Headless Chromium + ChromeDriver for the HTML report's browser tests (Debian packages).
browser:
	@if ! command -v chromedriver >/dev/null && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) \
		|| echo "apt failed: the browser tests will be skipped"; \
	fi

demo: data
	$(BIN)/cnnzoo demo

# Everything but the heavy tests, one pytest-xdist worker per core (8m20s on a 2-core AVX-512
# Xeon, 2026-12-02); plain `pytest` runs the fast set.
test: $(DEVSTAMP) data browser
	$(BIN)/ruff check cnnzoo tests benchmarks
	$(BIN)/python -m pytest -q -n auto -m "not heavy"

# Also the heavy tests: the giant models (1000+ layers, DenseNet-264, WRN-28-10) in every
# registry-wide check, every large model's ONNX export, training under --compile.
test-all: $(DEVSTAMP) data browser
	$(BIN)/python -m pytest -q -n auto -m "slow or not slow or heavy"

test-fast: $(DEVSTAMP) data
	$(BIN)/python -m pytest -q

lint: $(DEVSTAMP)
	$(BIN)/ruff check cnnzoo tests benchmarks

# Each script prints the tables that BENCHMARKS.md records; run them on a quiet machine.
bench: $(STAMP) data
	for s in bench_augment bench_loader bench_memory_format bench_train; do \
		$(BIN)/python benchmarks/$$s.py || exit 1; done

# The case studies' small-budget reports (minutes each, one after another; not part of test).
casestudies: $(STAMP) data
	$(BIN)/cnnzoo casestudy all --budget small --out docs/casestudies

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
