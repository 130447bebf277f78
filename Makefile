# Two commands on a fresh machine: `make run` (opens the window) and `make test` (the whole suite).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch is installed on its own first: a plain "torch" requirement lets pip pick a several-GB
# CUDA build. Override for your machine, e.g. `make run TORCH_SPEC="torch==2.13.0 --index-url ..."`.
TORCH_SPEC ?= torch==2.13.0

.PHONY: run test bench tour clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.torch: | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install $(TORCH_SPEC)
	touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.torch
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.torch
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@ $(VENV)/.installed

# app/qt_check.py asks ldd whether Qt's X11 plugin can load (it says nothing for QT_QPA_PLATFORM=offscreen
# or another platform) and, if not, stops with one line naming the missing packages.
run: $(VENV)/.installed
	@$(BIN)/python -m app.qt_check
	$(BIN)/python main.py

test: $(VENV)/.installed-test
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

bench: $(VENV)/.installed-test
	$(BIN)/python bench/run_all.py

tour: $(VENV)/.installed
	QT_QPA_PLATFORM=offscreen $(BIN)/python main.py tour --size 1440x900 --out assets/screenshots

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
