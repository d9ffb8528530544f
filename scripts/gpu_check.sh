#!/usr/bin/env bash
# Every GPU check in one run, for a bare CUDA machine with no network: it has torch, transformers,
# accelerate, peft, sympy, pyyaml and pytest; the rest comes as wheels from .gpu-wheels (prepare that
# folder with scripts/gpu_wheels.sh where pip works; about 6 MB).
#
#   scripts/gpu_check.sh             install rlvr from this tree (no dependencies) and the wheels into a
#                                    temporary folder, run `pytest -m gpu` (tests/test_gpu.py), then the
#                                    quickstart on the GPU; timings throughout, a summary at the end
#   scripts/gpu_check.sh --dry-run   everything but the GPU parts, on any machine (CI runs it): the
#                                    install, an import of what was installed, the gpu tests collected,
#                                    and a two-step quickstart on the CPU
# Results go to $OUT (or --out DIR; default /tmp/rlvr-gpu-check): gpu_check.json, pytest.log, the
# quickstart's folder. Aim: under 8 minutes on one H200.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
dry=0
out="${OUT:-/tmp/rlvr-gpu-check}"
while (( $# )); do
    case "$1" in
        --dry-run) dry=1 ;;
        --out) out="$2"; shift ;;
        *) echo "gpu_check.sh: unknown argument $1 (--dry-run, --out DIR)" >&2; exit 2 ;;
    esac
    shift
done
python="${PYTHON:-python3}"
wheels="${RLVR_GPU_WHEELS:-$repo/.gpu-wheels}"
mkdir -p "$out"
site="$(mktemp -d)/site"
start=$(date +%s)
declare -a timings=()
stage() { echo; echo "== $1 ($(( $(date +%s) - start )) s)"; }
done_stage() { timings+=("\"$1\": $(( $(date +%s) - $2 ))"); }

stage "machine"
t=$(date +%s)
"$python" - "$dry" <<'EOF'
import sys, torch
dry = sys.argv[1] == "1"
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"GPU 0: {p.name}, {p.total_memory / 2**30:.0f} GiB, bf16: {torch.cuda.is_bf16_supported()}")
elif not dry:
    sys.exit("gpu_check.sh: no CUDA device here (use --dry-run to check everything but the GPU parts)")
EOF
done_stage machine "$t"

stage "install rlvr (no dependencies) and the wheels into $site"
t=$(date +%s)
shopt -s nullglob
whls=("$wheels"/*.whl)
if (( ${#whls[@]} )) && (( dry )); then
    # the wheels are for the GPU machine's Python: install them as for it, beside (not into) this one's path
    "$python" -m pip install -q --no-index --no-deps --no-compile --target "$site-gpu" --python-version 3.12 \
        --implementation cp --only-binary=:all: --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
        "${whls[@]}"
    echo "the ${#whls[@]} wheels of $wheels install for CPython 3.12 on x86-64: $(ls "$site-gpu" | grep -c dist-info) packages"
elif (( ${#whls[@]} )); then
    "$python" -m pip install -q --no-index --no-deps --no-compile --target "$site" "${whls[@]}"
else
    echo "no wheels in $wheels: using what this Python has (scripts/gpu_wheels.sh prepares them)"
fi
"$python" -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target "$site" "$repo"
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
# the tests import rlvr from the tree (tests/conftest.py puts it first); the installed copy gives the
# entry points that register the verifiers
"$python" -c "
import deepspeed, rlvr, verifiers
missing = {'math', 'format', 'code', 'reward_model'} - set(verifiers.available())
assert not missing, f'verifiers not registered: {missing}'
print(f'deepspeed {deepspeed.__version__}; rlvr verifiers: {sorted(verifiers.available())}')"
done_stage install "$t"

cd "$repo"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" TOKENIZERS_PARALLELISM=false
stage "pytest -m gpu"
t=$(date +%s)
if (( dry )); then
    n=$("$python" -m pytest -q -m gpu --collect-only -p no:cacheprovider tests/test_gpu.py | tee "$out/pytest.log" \
        | grep -c "::" || true)
    (( n > 0 )) || { echo "gpu_check.sh: no gpu tests collected" >&2; exit 1; }
    echo "$n gpu tests collected (not run: --dry-run)"
else
    set +e
    "$python" -m pytest -q -m gpu -p no:cacheprovider -rA --durations=0 tests/test_gpu.py 2>&1 | tee "$out/pytest.log"
    tests_rc=${PIPESTATUS[0]}
    set -e
fi
done_stage gpu_tests "$t"

stage "quickstart"
t=$(date +%s)
qs=("$python" -m rlvr quickstart --out "$out/quickstart")
if (( dry )); then qs+=(--sft-steps 4 --rl-steps 2); fi
rm -rf "$out/quickstart"
"${qs[@]}" > "$out/quickstart.log" 2>&1 || { tail -n 30 "$out/quickstart.log"; exit 1; }
grep -v "^Total time" "$out/quickstart/report.md" | grep "|"
done_stage quickstart "$t"

stage "summary"
printf '{%s, "total": %s, "dry_run": %s, "gpu_tests_rc": %s}\n' "$(IFS=,; echo "${timings[*]}")" \
    "$(( $(date +%s) - start ))" "$dry" "${tests_rc:-null}" > "$out/gpu_check.json"
"$python" - "$out" <<'EOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
t = json.loads((out / "gpu_check.json").read_text())
print("seconds: " + ", ".join(f"{k} {v}" for k, v in t.items() if isinstance(v, int) and k not in ("dry_run",)))
s = json.loads((out / "quickstart" / "summary.json").read_text())
print("quickstart: " + ", ".join(f"{k} {s[k]}" for k in ("sft_accuracy", "rl_accuracy", "seconds") if k in s))
EOF
exit "${tests_rc:-0}"
