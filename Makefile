# Reverie: `make train` sets up .venv, trains the default config and evaluates it;
# `make test` runs the test suite.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= dqn_cartpole
RUN_DIR ?= runs/$(CONFIG)-$(shell date +%Y%m%d-%H%M%S)
EPISODES ?= 20

.PHONY: train test install bench clean

$(BIN)/reverie: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) not found; Reverie needs Python 3.11 on Linux x86_64 (or the container image, see README.md)"; exit 2; }
	@$(PYTHON) -c 'import sys, platform; ok = sys.version_info[:2] == (3, 11) and sys.platform == "linux" and platform.machine() == "x86_64"; sys.exit(0 if ok else "make: Reverie needs Python 3.11 on Linux x86_64 (dm-reverb ships wheels for nothing else); use the container image, see README.md")'
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/reverie

train: $(BIN)/reverie
	$(BIN)/reverie train $(CONFIG) --run-dir $(RUN_DIR)
	$(BIN)/reverie eval $(RUN_DIR) --episodes $(EPISODES)

test: $(BIN)/reverie
	$(BIN)/python -m pytest -q tests

bench: $(BIN)/reverie
	$(BIN)/python benchmarks/time_to_solve.py

clean:
	rm -rf $(VENV) build dist *.egg-info
