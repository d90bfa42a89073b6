# Reverie: `make train` sets up .venv, trains the default config and evaluates it;
# `make test` runs the test suite.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= dqn_cartpole
RUN_DIR ?= runs/$(CONFIG)-$(shell date +%Y%m%d-%H%M%S)
EPISODES ?= 20

.PHONY: train test install bench bench-baselines clean

$(BIN)/reverie: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) not found; Reverie needs Python 3.11 on Linux x86_64 (or the container image, see README.md)"; exit 2; }
	@$(PYTHON) -c 'import sys, platform; ok = sys.version_info[:2] == (3, 11) and sys.platform == "linux" and platform.machine() == "x86_64"; sys.exit(0 if ok else "make: Reverie needs Python 3.11 on Linux x86_64 (dm-reverb ships wheels for nothing else); use the container image, see README.md")'
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@# Byte-compiled as pip compiles installed packages (an editable install does not): where
	@# PYTHONDONTWRITEBYTECODE is set, every run compiled Reverie's modules again (27 ms a start).
	$(BIN)/python -m compileall -q agents envs launch >/dev/null
	touch $@

# The tests also run the Ray launcher: `make test` adds the optional ray extra (make train does not).
$(VENV)/.ray-installed: $(BIN)/reverie
	$(BIN)/pip install --quiet -e '.[test,ray]'
	touch $@

install: $(BIN)/reverie

train: $(BIN)/reverie
	$(BIN)/reverie train $(CONFIG) --run-dir $(RUN_DIR)
	$(BIN)/reverie eval $(RUN_DIR) --episodes $(EPISODES)

test: $(VENV)/.ray-installed
	$(BIN)/python -m pytest -q tests

# Stable-Baselines3 for benchmarks/time_to_solve_sb3.py, in its own environment (never a
# dependency of Reverie): torch 2.13.0's CPU wheel (pip finds it on this machine's disk; the check
# below stops if a CUDA build came in instead), then SB3 and the gymnasium release Reverie runs.
BASELINES := benchmarks/.venv-baselines
$(BASELINES)/.installed:
	test -d $(BASELINES) || $(PYTHON) -m venv $(BASELINES)
	$(BASELINES)/bin/pip install --quiet --upgrade pip
	$(BASELINES)/bin/pip install --quiet torch==2.13.0
	@$(BASELINES)/bin/python -c 'import torch, sys; sys.exit("make: a CUDA build of torch came into $(BASELINES); it needs the CPU wheel" if torch.version.cuda else 0)'
	$(BASELINES)/bin/pip install --quiet stable-baselines3==2.9.2 gymnasium==1.3.0
	@$(BASELINES)/bin/python -c 'import torch, stable_baselines3, gymnasium; print("baselines: torch", torch.__version__, "stable-baselines3", stable_baselines3.__version__, "gymnasium", gymnasium.__version__)'
	touch $@

bench-baselines: $(BASELINES)/.installed

# Every benchmark (about 30 minutes; launchers.py needs the ray extra); each writes a new dated section into benchmarks/results/<name>.txt,
# above the earlier ones, which are kept.
bench: $(VENV)/.ray-installed $(BASELINES)/.installed
	$(BIN)/python benchmarks/run_all.py --baselines-python $(BASELINES)/bin/python

clean:
	rm -rf $(VENV) build dist *.egg-info
