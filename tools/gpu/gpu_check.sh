#!/usr/bin/env bash
# minivit GPU check: one run of about 8 minutes, from the project root, on a machine with a CUDA GPU and CuPy:
#   bash tools/gpu/gpu_check.sh [CIFAR]
# (kept in the repository with tools/gpu/gpu_smoke.py, which runs end to end on the strict CuPy
# stand-in, PYTHONPATH=tests/strict_cupy: a check of its calls, nothing about a GPU)
# CIFAR (optional): a cifar-10-python.tar.gz, or a folder holding cifar10_tarball.py and
# cifar10-jpeg.npz (a copy of ../shared/data placed inside the checkout). Writes <= 8 files to $OUT:
# summary.txt env.log pytest_gpu.log smoke.log train.log bench.log pytest_rest.log runs.tgz.
# Every stage has a time cap (and the whole script a budget, BUDGET=450 s); a stage that fails or
# times out is recorded in summary.txt (rc 124 = timed out) and the script goes on.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
PY=${PYTHON:-python3}
OUT=${OUT:-$PWD/gpu_check_out}; mkdir -p "$OUT"
BUDGET=${BUDGET:-450}
W=$(mktemp -d); mkdir -p "$W/runs"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg PYTHONDONTWRITEBYTECODE=1
SUM="$OUT/summary.txt"; : > "$SUM"

stage() {  # stage NAME CAP_SECONDS LOGFILE COMMAND...
  local name=$1 cap=$2 log=$3; shift 3
  local left=$((BUDGET - SECONDS - 10)) t0=$SECONDS rc
  if [ "$left" -lt 20 ]; then echo "$name: SKIPPED (budget spent)" | tee -a "$SUM"; return 0; fi
  [ "$cap" -gt "$left" ] && cap=$left
  local n0; n0=$( (cat "$log" 2>/dev/null || true) | wc -l)
  echo "=== $name (cap ${cap}s, $(date +%T)): $*" >> "$log"
  timeout -k 5 "$cap" "$@" >> "$log" 2>&1; rc=$?
  local last; last=$(tail -n +"$((n0 + 1))" "$log" | grep -aE \
    "passed|failed|smoke:|img/s|images_per_second|accuracy [0-9]|rror|MISSING" | tail -1 | cut -c1-140)
  printf '%-12s rc=%-3s %4ss  %s\n' "$name" "$rc" "$((SECONDS - t0))" "$last" | tee -a "$SUM"
}

cat > "$W/env.py" <<'EOF'
import importlib, os, platform, sys
print("python", sys.version.split()[0], platform.machine())
for name in ["numpy", "cupy", "scipy", "einops", "matplotlib", "tqdm", "PIL", "sklearn",
             "threadpoolctl", "pytest", "hypothesis", "torch", "timm", "safetensors",
             "nbformat", "nbclient", "ipykernel"]:
    try:
        print(f"{name:14s}", getattr(importlib.import_module(name), "__version__", "?"))
    except Exception as error:
        print(f"MISSING {name}: {type(error).__name__}: {error}")
print({k: v for k, v in os.environ.items() if k.startswith(("CUPY", "CUDA", "NVIDIA"))})
import cupy
cupy.show_config()
print("device:", cupy.cuda.runtime.getDeviceProperties(0)["name"], "count",
      cupy.cuda.runtime.getDeviceCount())
import minivit
print("minivit.gpu_available():", minivit.gpu_available())
EOF

stage env 60 "$OUT/env.log" bash -c "nvidia-smi; $PY $W/env.py"
stage pytest_gpu 200 "$OUT/pytest_gpu.log" $PY -m pytest --device gpu -q -k gpu -rfEs \
  -p no:cacheprovider --durations=10
stage smoke 150 "$OUT/smoke.log" $PY "$HERE/gpu_smoke.py"
stage digits 90 "$OUT/train.log" $PY -m minivit.train --dataset digits --device gpu --epochs 10 \
  --out "$W/runs" --name digits-gpu
stage bench 110 "$OUT/bench.log" bash -c "$PY -m minivit.bench --device gpu --model C-Ti/4 --json \
  --profile || $PY -m minivit.bench --device gpu --model C-Ti/4 --json --no-torch"
stage bench_b1024 50 "$OUT/bench.log" $PY -m minivit.bench --device gpu --model C-Ti/4 \
  --batch-size 1024 --steps 5 --warmup 2 --no-torch
stage bench_gpu_preset 60 "$OUT/bench.log" $PY -m minivit.bench --device gpu --model C-M/4 \
  --steps 5 --warmup 2 --json

A=""; C=${1:-}
if [ -n "$C" ] && [ -f "$C" ]; then A=$C
elif [ -n "$C" ] && [ -f "$C/cifar10_tarball.py" ]; then
  stage cifar_build 90 "$OUT/train.log" $PY "$C/cifar10_tarball.py" "$W/c10"
  [ -f "$W/c10/cifar-10-python.tar.gz" ] && A=$W/c10/cifar-10-python.tar.gz
else echo "cifar: SKIPPED (no archive given as \$1)" | tee -a "$SUM"; fi
RUN=$W/runs/digits-gpu
if [ -n "$A" ]; then
  stage cifar_train 200 "$OUT/train.log" $PY -m minivit.train --preset gpu --dataset "cifar10:$A" \
    --data-dir "$W/data" --epochs 2 --warmup-epochs 1 --out "$W/runs" --name cifar10-gpu
  [ -f "$W/runs/cifar10-gpu/best.npz" ] && RUN=$W/runs/cifar10-gpu
fi
stage evaluate 60 "$OUT/train.log" $PY -m minivit.evaluate "$RUN/best.npz" --device gpu \
  --data-dir "$W/data"
stage inspect 60 "$OUT/train.log" $PY -m minivit.inspect "$RUN/best.npz" --device gpu \
  --data-dir "$W/data" --images 64 --out "$W/runs/figures"
stage pytest_rest 240 "$OUT/pytest_rest.log" $PY -m pytest --device gpu -x -q -k "not gpu" \
  -p no:cacheprovider --durations=10

tar czf "$OUT/runs.tgz" -C "$W/runs" --exclude='*.npz' . 2>/dev/null
echo "--- smoke ---"; grep -aE "^(PASS|FAIL|smoke)" "$OUT/smoke.log" | cut -c1-300
echo "--- failures ---"; grep -ahE "^(FAILED|ERROR) " "$OUT"/pytest_*.log | head -20
echo "--- summary (${SECONDS}s) ---"; cat "$SUM"
