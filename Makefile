# Set-up and the two commands the README opens with. Every target creates ./.venv on first use and skips
# what is installed already.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.rlvr-installed
# The CPU build of torch where no NVIDIA GPU is present (on these machines pip finds it locally).
TORCH   ?= torch==2.13.0

.PHONY: demo test setup clean-venv vllm-env

demo: setup  ## the main job: rlvr quickstart (tiny model, SFT on arith, evaluation)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(BIN)/rlvr quickstart

test: setup  ## the whole test suite, slow learning checks included
	$(BIN)/python -m pytest -q

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH)"
	@$(BIN)/python -c "import deepspeed" 2>/dev/null || \
		DS_BUILD_OPS=0 $(BIN)/pip install -q --no-build-isolation deepspeed
	$(BIN)/pip install -q -e ".[dev]"
	@touch $(STAMP)

clean-venv:
	rm -rf $(VENV)
