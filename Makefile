# ragft — `make demo` runs the default experiment; `make test` runs the test suite.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The offline switches (one list, shared with ragft/env.py).
include ragft/offline.env
export $(shell sed -n 's/^\([A-Z_][A-Z_0-9]*\)=.*/\1/p' ragft/offline.env)

VENV   ?= .venv
PY     := $(VENV)/bin/python
DVC    := $(VENV)/bin/dvc
# Torch goes in first, alone: `torch==2.13.0` takes the local CPU wheel here. constraints.txt then
# pins it for every later resolve, so nothing pulls CUDA wheels. On a CUDA machine:
#   make setup TORCH_SPEC=torch CONSTRAINTS=/dev/null
TORCH_SPEC  ?= torch==2.13.0
CONSTRAINTS ?= $(CURDIR)/constraints.txt
export PIP_CONSTRAINT := $(CONSTRAINTS)
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# Stage commands in dvc.yaml say `python`: make it the venv's.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help setup params demo test test-fast repro clean-runs mlflow-ui

help:
	@echo "make demo   - set up, run the default experiment (dvc repro), print where the results are"
	@echo "make test   - set up, run the test suite"
	@echo "make params - recompose params.yaml from conf/"

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	@touch $@

params: setup
	$(PY) -m ragft.config compose

demo: setup
	$(DVC) repro
	@$(PY) -m ragft.summary

repro: setup
	$(DVC) repro

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

mlflow-ui: setup
	$(VENV)/bin/mlflow ui --backend-store-uri "sqlite:///$(CURDIR)/mlflow.db" --host 127.0.0.1 --port 5000
