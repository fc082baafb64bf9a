#!/usr/bin/env bash
# Rebuild the default bundle (c3t_edge/assets/default_bundle, `--model default`) from scratch:
# depth camera, wrist actions 1-21, trained WITHOUT IMU labels by METHOD (default: st).
#
#   bash scripts/ship_default_bundle.sh [METHOD]      # about 10 minutes on a 2-core machine
#
# 1. the recipe on the development split (subjects 1,3,5) -> bundles/dev-METHOD-wrist-depth, whose
#    figures on unseen subjects 2,4,6 become the shipped bundle's `development_estimate`;
# 2. the same recipe on all subjects 1-6 -> runs/shipped-METHOD-wrist-depth -> the default bundle.
# Afterwards regenerate the runtime goldens: C3T_UPDATE_GOLDEN=1 python -m pytest tests/test_runtime_replay.py
set -euo pipefail
cd "$(dirname "$0")/.."
method=${1:-st}
py=${PYTHON:-.venv/bin/python}
recipe=(--method "$method" --camera depth --placement wrist --seed 0 --quiet)
dev=runs/dev-$method-wrist-depth
ship=runs/shipped-$method-wrist-depth

"$py" -m c3t_edge train "${recipe[@]}" --split development --out "$dev"
"$py" -m c3t_edge export "$dev" --out "bundles/dev-$method-wrist-depth" --overwrite --quiet
"$py" -m c3t_edge train "${recipe[@]}" --split all-subjects --out "$ship"
"$py" -m c3t_edge export "$ship" --out c3t_edge/assets/default_bundle --overwrite --quiet \
    --held-out-reference "bundles/dev-$method-wrist-depth" \
    --note "Default bundle: '$method' (no IMU labels: depth camera supervision transferred to the wrist IMU), wrist actions 1-21, all subjects 1-6; the UMA method that measured best on the development protocol (results/uma_utd_mhad_wrist.json). Its own accuracy/parity figures are on its training subjects; development_estimate has the same recipe's figures on unseen subjects 2,4,6. Rebuilt by: bash scripts/ship_default_bundle.sh $method"
"$py" -m c3t_edge info --model default
