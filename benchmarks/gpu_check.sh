#!/usr/bin/env bash
# The GPU check: one prepared script for a machine with an NVIDIA GPU (JAX with CUDA already installed there).
# From the repository root (the project goes on PYTHONPATH as `.`), within 8 minutes, each step under `timeout`:
#   1. the GPU-relevant tests: models (convolution per backend), inner optimiser, chunked evaluation (sized
#      from the device's free memory), multi-process detection, and a tiny `ganno train` run;
#   2. `ganno bench` at two sizes (8 and 64 env copies) of digits-cnn2 and the CIFAR-shaped ResNet-9;
#   3. `benchmarks/paper_scale.py --updates 1` (one paper-scale PPO update, timed and projected);
#   4. `experiments/generalisation.py --smoke --eval-tasks digits-cnn5` (train, evaluate, tables and plots).
# It writes <out>/summary.md (versions, devices, one row per step, the figures) and <out>/logs/<step>.log.
#
#   benchmarks/gpu_check.sh [OUT_DIR] [--wheels DIR] [--dry-run]
#
#   OUT_DIR     where to write (default: $OUT, else results/gpu_check)
#   --wheels D  pip-install every wheel in D first, offline (--no-index --find-links D): packages the GPU image
#               may lack (distrax and its tensorflow-probability, mnist1d, ...); fill D elsewhere with
#               `pip download distrax mnist1d -d D`
#   --dry-run   check the imports (not the GPU) and print the commands, running nothing; exit 0 if all import
# Before any step it fails fast (exit 3) naming every package that does not import, and (exit 4) when JAX sees
# no GPU. Exit 0: every step passed; 1: some step failed or timed out (the summary says which). PYTHON picks
# the interpreter (default python3).
set -uo pipefail

BUDGET_S=480  # the whole check, setup included
PY=${PYTHON:-python3}
# module to import -> its pip name (where they differ) for the message
REQUIRED="jax flax optax chex distrax orbax.checkpoint sklearn matplotlib tqdm mnist1d pytest"
PIP_NAMES="orbax.checkpoint=orbax-checkpoint sklearn=scikit-learn"

die() { echo "gpu_check: error: $1" >&2; exit "${2:-2}"; }
usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

out="" wheels="" dry=0
while [ $# -gt 0 ]; do
  case "$1" in
    --wheels) [ $# -ge 2 ] || die "--wheels needs a folder"; wheels=$2; shift 2 ;;
    --wheels=*) wheels=${1#*=}; shift ;;
    --dry-run) dry=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [ -z "$out" ] || die "one output folder only, got $out and $1"; out=$1; shift ;;
  esac
done
out=${out:-${OUT:-results/gpu_check}}
[ -f ganno_jax/__init__.py ] || die "run it from the repository root (no ganno_jax/ here: $(pwd))"
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
start=$(date +%s)

# ------------------------------------------------------------------------------------------ set-up
if [ -n "$wheels" ]; then
  [ -d "$wheels" ] || die "--wheels $wheels: not a folder"
  shopt -s nullglob
  whl=("$wheels"/*.whl)
  shopt -u nullglob
  [ ${#whl[@]} -gt 0 ] || die "--wheels $wheels: no .whl file in it"
  install=("$PY" -m pip install --no-index --find-links "$wheels" "${whl[@]}")
  if [ $dry -eq 1 ]; then
    echo "would run: ${install[*]}"
  else
    "${install[@]}" || die "pip could not install the wheels of $wheels offline (a dependency missing from it?)" 3
  fi
fi

missing=$("$PY" - $REQUIRED <<'EOF'
import importlib
import sys

for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception as err:  # an ImportError, or a package that fails while importing
        print(f"{name}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
EOF
) || die "$PY does not run" 3
if [ -n "$missing" ]; then
  names=$(echo "$missing" | cut -d: -f1 | while read -r m; do
            p=$(echo " $PIP_NAMES " | sed -n "s/.* $m=\([^ ]*\) .*/\1/p"); echo "${p:-$m}"; done | xargs)
  echo "gpu_check: these packages do not import:" >&2
  echo "$missing" | sed 's/^/  /' >&2
  if [ $dry -eq 1 ] && [ -n "$wheels" ]; then
    echo "gpu_check: (dry run: the wheels of $wheels, not installed now, must provide: $names)" >&2
  else
    die "missing: $names; pass --wheels DIR with their wheels (pip download $names -d DIR, elsewhere)" 3
  fi
fi

if [ $dry -eq 0 ]; then
  devices=$("$PY" - 2>&1 <<'EOF'
import sys

import jax

devices = jax.devices()
print(f"jax {jax.__version__}, backend {jax.default_backend()}, devices {devices}")
sys.exit(0 if devices[0].platform == "gpu" else 1)
EOF
  ) || die "JAX sees no GPU: $(echo "$devices" | tail -n 1) (is JAX's CUDA plugin installed?)" 4
  mkdir -p "$out/logs" || die "cannot create $out/logs"
  echo "$devices" > "$out/logs/devices.log"
fi

# ------------------------------------------------------------------------------------------ steps
TESTS=(tests/test_models.py tests/test_inner.py tests/test_chunked.py tests/test_distributed.py
       tests/test_refusals.py::test_corrected_command_runs_after_a_refusal_without_a_progress_bar)
names=() limits=() commands=()
add_step() { names+=("$1"); limits+=("$2"); shift 2; commands+=("$(printf '%q ' "$@")"); }
add_step tests 140 "$PY" -m pytest -p no:xdist -p no:cacheprovider -q --durations=10 "${TESTS[@]}" \
  -k "not two_processes and not four_devices"  # those two run CPU processes only
add_step bench 100 "$PY" -m ganno_jax.cli bench --out "$out/bench" --tasks digits-cnn2 cifar_shaped-resnet9 \
  --envs 8 64 --tau 20 --repeats 2 --no-torch
add_step paper_scale 140 "$PY" benchmarks/paper_scale.py --updates 1 --json "$out/paper_scale.json"
add_step generalisation 80 "$PY" experiments/generalisation.py --smoke --eval-tasks digits-cnn5 --no-progress \
  --overwrite --out "$out/generalisation"

if [ $dry -eq 1 ]; then
  echo "dry run: would write $out/summary.md and $out/logs/, running (budget ${BUDGET_S} s in all):"
  for i in "${!names[@]}"; do echo "  [${names[$i]}] timeout ${limits[$i]} ${commands[$i]}"; done
  exit 0
fi

rows=() failed=0
for i in "${!names[@]}"; do
  name=${names[$i]} log="$out/logs/${names[$i]}.log"
  left=$((BUDGET_S - ($(date +%s) - start)))
  limit=$(( left < limits[i] ? left : limits[i] ))
  if [ "$limit" -lt 15 ]; then
    rows+=("| $name | skipped: the ${BUDGET_S} s budget is spent | 0 | ${limits[$i]} |"); failed=1; continue
  fi
  echo "gpu_check: [$name] (timeout ${limit} s) ${commands[$i]}"
  t0=$(date +%s)
  eval "timeout --kill-after=10 $limit ${commands[$i]}" > "$log" 2>&1
  rc=$?
  seconds=$(($(date +%s) - t0))
  case $rc in
    0) status=passed ;;
    124|137) status="timed out after ${limit} s"; failed=1 ;;
    *) status="failed (exit $rc)"; failed=1 ;;
  esac
  echo "gpu_check: [$name] $status in ${seconds} s"
  rows+=("| $name | $status | $seconds | $limit |")
done

# ------------------------------------------------------------------------------------------ summary
{
  echo "# GPU check ($(date -u '+%Y-%m-%d %H:%M UTC'), $(($(date +%s) - start)) s in all)"
  echo
  echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown); host: $(hostname)"
  echo "- $(echo "$devices" | tail -n 1)"
  echo "- GPUs: $(nvidia-smi -L 2>/dev/null | tr '\n' ';' || echo 'nvidia-smi not found')"
  echo "- python: $("$PY" -c 'import platform; print(platform.python_version())'); packages: $("$PY" -c '
import importlib.metadata as m
names = ("jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda13-plugin", "flax", "optax", "orbax-checkpoint", "distrax")
found = []
for n in names:
    try:
        found.append(f"{n} {m.version(n)}")
    except m.PackageNotFoundError:
        pass
print(", ".join(found))')"
  echo
  echo "| step | result | seconds | timeout (s) |"
  echo "|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "## tests"
  echo; echo '```'; tail -n 15 "$out/logs/tests.log" 2>/dev/null; echo '```'
  echo; echo "## ganno bench (bench/bench.csv)"
  echo; echo '```'; cat "$out/bench/bench.csv" 2>/dev/null || tail -n 15 "$out/logs/bench.log"; echo '```'
  echo; echo "## paper_scale.py --updates 1"
  echo; echo '```'; tail -n 1 "$out/logs/paper_scale.log" 2>/dev/null; echo '```'
  echo; echo "## generalisation.py --smoke (generalisation/README.md)"
  echo; cat "$out/generalisation/README.md" 2>/dev/null || { echo '```'; tail -n 15 "$out/logs/generalisation.log"; echo '```'; }
} > "$out/summary.md"
echo "gpu_check: wrote $out/summary.md"
exit $failed
