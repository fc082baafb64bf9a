#!/usr/bin/env bash
# The main job on embedded defaults: a light runtime environment (numpy, onnxruntime, pyserial,
# bleak: no torch) and `c3t-edge demo`, which streams a shipped recording of real UTD-MHAD trials
# through the default model bundle. No ../shared, no hardware needed.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv-runtime
.venv-runtime/bin/python -m pip install --quiet --upgrade pip
.venv-runtime/bin/python -m pip install --quiet -e .
.venv-runtime/bin/c3t-edge info --model default
.venv-runtime/bin/c3t-edge demo "$@"
