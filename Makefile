# Two commands set everything up on a fresh machine:
#   make demo   creates .venv, installs, runs the main job on the embedded default
#   make test   creates .venv if needed, installs, runs the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch and torchvision are pinned to the wheels this build machine has on disk:
# any other version downloads gigabytes.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
PYTEST_WORKERS ?= 2

.PHONY: demo test install lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH_PINS)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/clipvil demo

test: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/pytest -q -n $(PYTEST_WORKERS) --durations=15

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_simulator.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
