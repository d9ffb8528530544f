#!/usr/bin/env bash
# Prepare the wheels scripts/gpu_check.sh installs on a CUDA machine that has no network: what rlvr needs
# beyond torch, transformers, accelerate, peft, sympy, pyyaml, pytest, matplotlib, numpy, tqdm and the
# like, which such a machine has. Run it where pip reaches PyPI, from the checkout whose main venv
# (.venv, `make setup`) is installed: the versions are that venv's, so both machines run the same code.
#   scripts/gpu_wheels.sh [DIR]        (default .gpu-wheels, git-ignored; about 6 MB)
# Wheels for CPython 3.12 on x86-64 Linux (the GPU machine's Python); PYTHON_VERSION=3.11 for another.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-$repo/.gpu-wheels}"
pyver="${PYTHON_VERSION:-3.12}"
pip=("$repo/.venv/bin/pip")
[[ -x "${pip[0]}" ]] || { echo "gpu_wheels.sh: needs $repo/.venv (run: make setup)" >&2; exit 2; }

version() { "$repo/.venv/bin/python" -c "import importlib.metadata as m; print(m.version('$1'))"; }
mkdir -p "$dir"
rm -f "$dir"/*.whl
# DeepSpeed's own needs the GPU machine lacks (pydantic, hjson), and rlvr's (latex2sympy2_extended and its
# ANTLR runtime for the math verifier; gguf for GGUF models)
names=(hjson pydantic pydantic_core annotated_types typing_inspection latex2sympy2_extended
       antlr4-python3-runtime gguf)
pinned=()
for n in "${names[@]}"; do pinned+=("$n==$(version "$n")"); done
"${pip[@]}" download -q --no-deps --only-binary=:all: -d "$dir" --python-version "$pyver" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    "${pinned[@]}"
# DeepSpeed ships only a source archive; built without its compiled ops (they compile on first use, on the
# machine that uses them) it is a pure-Python wheel
DS_BUILD_OPS=0 "${pip[@]}" wheel -q --no-deps --no-build-isolation -w "$dir" "deepspeed==$(version deepspeed)"
ls -1 "$dir"
du -sh "$dir"
