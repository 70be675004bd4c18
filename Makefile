# Two entry points for a fresh machine: `make demo` and `make test`. Both create .venv when it is
# missing or older than pyproject.toml, install the project into it, then do their job.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.raysweep-installed
FASHION := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
PYTEST_ARGS ?=

.PHONY: demo test test-fast env neps-env data services lint bench clean

env: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# NePS (PriorBand, a peer of `raysweep bench searcher`) pins pandas<3 and networkx<3, which .venv
# cannot hold: it gets an environment of its own, used as a child process. Its tests skip without it.
NEPS_VENV := .venv-neps
neps-env: $(NEPS_VENV)/.installed
$(NEPS_VENV)/.installed:
	@( test -x $(NEPS_VENV)/bin/python || $(PYTHON) -m venv $(NEPS_VENV) ) \
	  && $(NEPS_VENV)/bin/pip install -q 'neural-pipeline-search==0.17.0' 'torch==2.9.0' 'torchvision==0.24.0' && touch $@ \
	  || echo "make: could not build $(NEPS_VENV); the PriorBand peers and their tests will be skipped"

# Fashion-MNIST comes from Debian (offline-safe): installed when we may, skipped tests say why otherwise.
data:
	@if [ ! -f $(FASHION) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
	      || echo "make: could not install dataset-fashion-mnist; Fashion-MNIST tests will be skipped"; \
	  else echo "make: not root: run 'apt-get install dataset-fashion-mnist' for the Fashion-MNIST set"; fi; \
	fi

# PostgreSQL's server binaries for the study-database tests (they start their own server in a
# scratch folder as the unprivileged `postgres` user and stop it by pid; nothing runs as a service).
PG_INITDB := $(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb))
services:
	@if [ -z "$(PG_INITDB)" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
	      || echo "make: could not install postgresql; the PostgreSQL study tests will be skipped"; \
	  else echo "make: not root: run 'apt-get install postgresql' for the PostgreSQL study tests"; fi; \
	fi

demo: env
	$(BIN)/raysweep run search_spaces/demo.yaml

test: env neps-env data services
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The quick part (no Ray cluster, server or fault test): minutes, for the edit-test loop
test-fast: env
	$(BIN)/python -m pytest -m "not slow" -q $(PYTEST_ARGS)

lint: env
	$(BIN)/ruff check raysweep tests
	$(BIN)/mypy raysweep

clean:
	rm -rf raysweep_results mlruns mlflow.db
