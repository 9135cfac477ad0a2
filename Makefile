# descentlab: `make run` installs what is missing and serves the course; `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
# The CPU build of torch; override e.g. `make test TORCH_SPEC='torch==2.14.1'`.
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= lab,video,course,postgres,dev
HOST ?= 127.0.0.1
PORT ?= 8000

comma := ,
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: install run demo test bench lint format clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@# Torch first, pinned, so that the package's range (torch>=2.4) never pulls a CUDA build.
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

run: install
	@echo "descentlab course at http://$(HOST):$(PORT)"
	$(PY) -m descentlab serve --host $(HOST) --port $(PORT)

demo: install
	$(PY) -m descentlab demo

test: install
	$(PY) -m pytest

bench: install
	$(PY) -m pip install -q -e ".[$(EXTRAS),bench]"
	$(PY) benchmarks/step_speed.py

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: install
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache .hypothesis
