#!/usr/bin/env bash
# The CUDA path in one call, for a machine with a GPU (run by hand, never in CI):
#
#     bash benchmarks/gpu_check.sh DATA_DIR OUT_DIR [PYTHON]
#
# Trains, evaluates and times digitos on the GPU, runs torchrun with NCCL, and times a
# training step's variants (benchmarks/gpu_step.py). Each step's
# log goes to OUT_DIR/NAME.log; a failing step does not stop the ones after it.
set -u
DATA=$1 OUT=$2 PY=${3:-python3}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
RUNS=$(mktemp -d)

step() {  # step NAME SECONDS COMMAND...: run, log, print rc and the log's tail
    local name=$1 limit=$2; shift 2
    local t0=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    echo "=== $name: rc $rc, $((SECONDS - t0)) s"
    tail -n "${TAIL:-8}" "$OUT/$name.log"
}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda,
torch.cuda.is_available() and torch.cuda.get_device_name())"
step train_fast 120 $PY -m digitos train --recipe fast --device cuda --data-dir "$DATA" \
    --out "$RUNS/fast" --quiet
step evaluate 60 $PY -m digitos evaluate "$RUNS/fast/best.pt" --device cuda --data-dir "$DATA"
TAIL=12 step speed_fast 120 $PY benchmarks/train_speed.py --data-dir "$DATA" --device cuda \
    --recipes fast --target 0.99 --skip-class --out "$RUNS/bench"
TAIL=20 step speed_default 150 $PY benchmarks/train_speed.py --data-dir "$DATA" --device cuda \
    --recipes default --target 0.995 --skip-class --out "$RUNS/bench"
step torchrun 120 $PY -m torch.distributed.run --standalone --nproc_per_node 1 -m digitos train \
    --recipe fast --device cuda --data-dir "$DATA" --out "$RUNS/ddp" --quiet
step ema 120 $PY -m digitos train --recipe fast --ema 0.999 --device cuda --data-dir "$DATA" \
    --out "$RUNS/ema" --quiet
TAIL=4 step reader 120 $PY -m digitos train --recipe reader --device cuda --data-dir "$DATA" \
    --out "$RUNS/reader" --quiet
TAIL=40 step gpu_step 150 $PY benchmarks/gpu_step.py --data-dir "$DATA" --steps 300
for r in fast ddp ema reader; do
    [ -f "$RUNS/$r/metrics.csv" ] && { echo "--- $r/metrics.csv"; cat "$RUNS/$r/metrics.csv"; }
done
exit 0
