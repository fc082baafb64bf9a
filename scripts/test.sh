#!/usr/bin/env bash
# Set up a virtual environment from the project's own files and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# gateway: the web view (and MQTT) tests; tflite: the TFLite conversion and --target mcu tests run (torch stays at the train extra's 2.13.0 CPU pin)
.venv/bin/python -m pip install --quiet -e '.[train,dev,tflite,gateway]'
.venv/bin/ruff check c3t_edge/  # lint, and no function above McCabe complexity 15 (pyproject.toml)
# screenshots and other test artifacts (the web view's page in headless Chromium) are kept here
export C3T_TEST_ARTIFACTS="${C3T_TEST_ARTIFACTS:-$PWD/test-artifacts}"
.venv/bin/python -m pytest "$@"
