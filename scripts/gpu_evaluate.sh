#!/usr/bin/env bash
# The development evaluation on one CUDA GPU, timed against the 2-core CPU.
#
#   scripts/gpu_evaluate.sh [OUT.json]        (default results/gpu_development.json)
#
# 1. Smoke: every built-in method trains 20 steps per stage with --device cuda (catches a CPU tensor
#    meeting a GPU one before the long run).
# 2. Throughput: one `ca` fit (its defaults: camera stage + alignment stage, 100 steps each, batch 64)
#    on the GPU and on the CPU with 2 threads -> training samples/s of each and their ratio.
# 3. The development evaluation (`c3t-edge evaluate`, every method, 5 seeds, label-free selection)
#    with --device cuda: minutes, against the CPU minutes recorded in results/uma_utd_mhad.json when
#    that file exists (its evaluation_seconds). Target: <= 10 minutes.
#
# Needs a CUDA build of torch in .venv (the train extra pins the CPU-friendly 2.13.0; on a GPU machine:
# .venv/bin/pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126) and the
# UTD-MHAD folder ($C3T_DATA or ../shared/datasets/utd-mhad).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${1:-results/gpu_development.json}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

"$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else
          "gpu_evaluate: torch sees no CUDA GPU (torch " + torch.__version__ + "): install a CUDA build of torch")'
"$PY" -c 'import torch; print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__)'

echo "== 1. smoke: 20 steps per stage of every method on the GPU"
for method in supervised camera st ca c3t distill-align; do
    "$PY" -m c3t_edge train --method "$method" --steps 20 --device cuda --quiet --out "$WORK/smoke-$method" >/dev/null
    echo "   $method ok"
done

echo "== 2. throughput of one ca fit (100 steps per stage, batch 64)"
throughput() {  # DEVICE THREADS -> prints samples/s
    OMP_NUM_THREADS=$2 "$PY" - "$1" "$2" <<'PYEOF'
import sys, torch
from c3t_edge import distributed
from c3t_edge.methods import default_config
from c3t_edge.training import fit_method, load_arrays, make_split
torch.set_num_threads(int(sys.argv[2]))
distributed.init(sys.argv[1])
config = default_config("ca", steps=100)
arrays = load_arrays(None, config)
method, seconds = fit_method(config, arrays, make_split(arrays, "development"))
print(f"{method.optimiser_steps() * config.batch_size / seconds:.1f}")
PYEOF
}
gpu_rate=$(throughput cuda 2)
cpu_rate=$(throughput cpu 2)
echo "   GPU ${gpu_rate} samples/s, CPU (2 threads) ${cpu_rate} samples/s, ratio $("$PY" -c "print(round($gpu_rate / $cpu_rate, 1))")x"

echo "== 3. development evaluation on the GPU -> $OUT"
start=$(date +%s)
# the command that made results/uma_utd_mhad.json on the CPU, on the GPU
"$PY" -m c3t_edge evaluate --device cuda --quiet --placement all --split development \
    --distortion shift --distortion dilate --out "$OUT"
minutes=$("$PY" -c "print(round(($(date +%s) - $start) / 60, 1))")
cpu_minutes=$("$PY" -c '
import json, pathlib
p = pathlib.Path("results/uma_utd_mhad.json")
print(round(json.loads(p.read_text())["evaluation_seconds"] / 60, 1) if p.is_file() else "n/a")')
echo "   GPU: ${minutes} min for the 5-seed development evaluation (target <= 10); CPU (2 cores): ${cpu_minutes} min"
