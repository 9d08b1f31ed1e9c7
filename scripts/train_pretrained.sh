#!/usr/bin/env bash
# The exact commands that trained the shipped pretrained model (swycc/pretrained/small-swycc)
# and its paper-default twin (x-prediction) for comparison. CPU, 2 cores, one core each.
# Re-running resumes. Afterwards: scripts/ship_pretrained.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
BUDGET=${BUDGET:-4200}
COMMON=(--preset small --total-steps 6000 --lr 5e-4 --time-budget "$BUDGET" --no-progress
        --set train.checkpoint_every=250 --set train.sample_every=1000)
OMP_NUM_THREADS=1 .venv/bin/swycc train "${COMMON[@]}" --set model.unet.predict_residual=true \
    --out runs/pretrained-residual > runs/pretrained-residual.log 2>&1 &
OMP_NUM_THREADS=1 .venv/bin/swycc train "${COMMON[@]}" --out runs/pretrained-paper \
    > runs/pretrained-paper.log 2>&1 &
wait
