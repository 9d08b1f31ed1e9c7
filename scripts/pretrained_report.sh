#!/usr/bin/env bash
# Regenerates the figures and tables of the README's "Shipped model" section (CPU, ~15 min):
# the demo on the shipped model, the steps x guidance sweep, and the paper-default twin.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
.venv/bin/swycc demo --out docs/pretrained --steps 20 --samples 4 --no-progress
.venv/bin/python -m swycc.sweep --out docs/pretrained/sweep --samples 4
if [ -d runs/pretrained-paper/export ]; then
  .venv/bin/swycc demo --checkpoint runs/pretrained-paper/export --out docs/pretrained/paper-default \
      --steps 20 --samples 4 --no-progress
fi
