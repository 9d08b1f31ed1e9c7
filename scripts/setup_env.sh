#!/usr/bin/env bash
# Creates ./.venv (once) with the CPU build of torch 2.13.0 and swycc installed in editable mode.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import swycc, torch, pytest, transformers, gradio, selenium, tensorboard, diffusers" >/dev/null 2>&1; then
  .venv/bin/pip install -q --disable-pip-version-check torch==2.13.0
  .venv/bin/pip install -q --disable-pip-version-check -e ".[dev]"
fi
