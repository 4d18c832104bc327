# lr-sweeper. `make setup` is idempotent; demo/test/bench depend on it, so each
# works from a fresh clone by itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.setup-done
# A CPU build of torch by default (seconds here, no CUDA wheels). On a GPU machine
# nvidia-smi is found and plain `torch` (a CUDA build) is installed instead; or set
# TORCH_SPEC / TORCH_INDEX yourself, e.g.
#   make setup TORCH_SPEC=torch TORCH_INDEX=https://download.pytorch.org/whl/cu126
TORCH_SPEC  ?= $(if $(shell command -v nvidia-smi 2>/dev/null),torch,torch==2.13.0)
TORCH_INDEX ?=
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
# Packages go in with uv (itself pip-installed into each venv): it downloads in parallel and keeps one
# cache for both venvs; here `make setup` + `make setup-litgpt` took 153 + 192 s with pip. It reads no
# pip.conf, so pip's find-links from the environment (where some machines keep a torch file) are
# passed on; --compile-bytecode because a PYTHONDONTWRITEBYTECODE machine would never write it.
UV_INSTALL = $(1)/bin/python -m uv pip install -q --compile-bytecode --python $(1)/bin/python \
	$(foreach links,$(PIP_FIND_LINKS),--find-links $(links))

# $(call VENV_WITH,VENV,EXTRA): the venv, uv in it, torch first (TORCH_SPEC/TORCH_INDEX), then the
# project in editable mode with that extra
define VENV_WITH
	@test -x $(1)/bin/python || $(PYTHON) -m venv $(1)
	@$(1)/bin/python -c "import uv" 2>/dev/null || $(1)/bin/python -m pip --disable-pip-version-check -q \
		install "uv>=0.5" 2>&1 | grep -v "^WARNING: Location" || true
	@$(1)/bin/python -c "import torch" 2>/dev/null || \
		$(call UV_INSTALL,$(1)) "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) || true
	@$(1)/bin/python -c "import torch" || { echo "error: torch did not install (TORCH_SPEC=$(TORCH_SPEC))"; exit 1; }
	$(call UV_INSTALL,$(1)) -e ".[$(2)]" -C editable_mode=compat
endef

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS := 1

.PHONY: setup setup-litgpt demo test test-fast bench gpu-check tensorboard dashboard report clean tiny

setup: $(STAMP)
	@# our own modules' bytecode, which a machine with PYTHONDONTWRITEBYTECODE=1 never writes: without
	@# it every trial process compiles them again (~0.08 s of each start on 2 cores); a stale one is ignored
	@$(BIN)/python -m compileall -q sweeper trainers hydra_plugins bench > /dev/null

$(STAMP): pyproject.toml Makefile
	$(call VENV_WITH,$(VENV),dev)
	@$(BIN)/python -c "import sweeper, trainers, optuna, hydra, peft, transformers, tensorboard" \
		|| { echo "error: install incomplete"; exit 1; }
	@touch $(STAMP)
	@echo "setup done: $(VENV) ($$($(BIN)/python -c 'import torch; print("torch", torch.__version__)'))"

# trainer=litgpt in its own environment: LitGPT pins huggingface-hub<1.4, which the newest
# transformers cannot use, so `.[litgpt]` beside `.[dev]` would hold transformers back for every
# test. This venv holds the product + LitGPT (uv resolves transformers down to what fits);
# the LitGPT tests and bench run the sweeper with its python. Users: pip install -e '.[litgpt]'.
LITGPT_VENV  := .venv-litgpt
LITGPT_STAMP := $(LITGPT_VENV)/.setup-done
setup-litgpt: $(LITGPT_STAMP)

$(LITGPT_STAMP): pyproject.toml Makefile
	$(call VENV_WITH,$(LITGPT_VENV),litgpt)
	@$(LITGPT_VENV)/bin/python -c "import sweeper, trainers, litgpt, transformers" \
		|| { echo "error: the litgpt environment is incomplete"; exit 1; }
	@touch $(LITGPT_STAMP)
	@echo "setup-litgpt done: $(LITGPT_VENV)"

# A real sweep on the embedded default model and data (2-core CPU: about 40 s once set up):
# the LR range test picks the lr interval, TPE + median pruning search it with the
# scheduler and LoRA rank, then the 2 best configs are re-run with 2 more seeds.
DEMO_NAME ?= demo
demo: setup
	$(BIN)/python -m sweeper -m sweep.name=$(DEMO_NAME) \
		lr=auto scheduler=cosine,linear lora=r8,r16 \
		max_steps=60 eval_interval=10 save_interval=30 \
		hydra.sweeper.n_trials=10 hydra.sweeper.repeat.top_k=2 hydra.sweeper.repeat.seeds=3
	@echo "open results/$(DEMO_NAME)/summary.md and results/$(DEMO_NAME)/curves.png, or: make tensorboard"

# two test workers (pytest-xdist): most of a test's time is a process importing torch, transformers and
# peft, which two cores do side by side; a group (xdist_group) keeps its tests in one worker
TEST_WORKERS ?= 2
PYTEST = $(BIN)/python -m pytest -q -rs -n $(TEST_WORKERS) --dist loadgroup
test: setup setup-litgpt
	$(PYTEST) tests

test-fast: setup
	$(PYTEST) -m "not slow" tests

bench: setup setup-litgpt
	$(BIN)/python -m bench $(BENCH_ARGS)

# Short real sweeps on this machine's CUDA GPUs (bench/gpu_check.py): bf16-true on one GPU, and with
# two visible the pool (parallel=2) and a data-parallel trial (devices=2). Without one: exit 1.
gpu-check: setup
	$(BIN)/python -m bench.gpu_check

SWEEP ?= results
tensorboard: setup
	$(BIN)/tensorboard --logdir $(SWEEP) --host 127.0.0.1

# optuna-dashboard on a sweep's study: make dashboard DIR=results/<sweep> (or STORAGE=<optuna url>)
DIR ?= results/$(DEMO_NAME)
STORAGE ?= sqlite:///$(abspath $(DIR))/study.db
dashboard: setup
	@$(BIN)/python -c "import optuna_dashboard" 2>/dev/null || $(PIP) install "optuna-dashboard>=0.17"
	$(BIN)/optuna-dashboard --host 127.0.0.1 "$(STORAGE)"

report: setup
	$(BIN)/python -m sweeper.report results/$(DEMO_NAME)

tiny: setup
	$(BIN)/python -m trainers.build_tiny

clean:
	rm -rf results/*/ .pytest_cache
