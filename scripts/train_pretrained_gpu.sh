#!/usr/bin/env bash
# The exact commands that trained the 2-channel model (swycc/pretrained/small-swycc-f8c2) and the two
# models it is compared with in the README, on one lent NVIDIA H100 (2026-11-23):
#   1. SWYCC, residual variant (shipped) and its paper-default twin (x-prediction), side by side
#      on the same GPU; both stopped by the 530 s budget at step 2890 of a 3500-step schedule;
#   2. the GAN baseline alone on the GPU afterwards; it reached its 3500 steps in ~320 s.
# `small` preset, batch 256, bf16 autocast. Re-running resumes. On another machine the budget
# ends at another step: add `--max-steps 2890` (SWYCC) to reproduce the same length.
# Afterwards: scripts/ship_pretrained.sh runs/gpu-residual small-swycc-f8c2; scripts/pretrained_report.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
mkdir -p runs
COMMON=(--preset small --device cuda --bf16 --batch-size 256 --lr 5e-4 --total-steps 3500
        --no-progress --set train.warmup_steps=500 --set train.ema_decay=0.9995
        --set train.checkpoint_every=1000 --set train.sample_every=2000)
$PY -m swycc train "${COMMON[@]}" --time-budget 530 --set train.num_workers=6 \
    --set model.unet.predict_residual=true --out runs/gpu-residual >> runs/gpu-residual.log 2>&1 &
$PY -m swycc train "${COMMON[@]}" --time-budget 530 --set train.num_workers=6 \
    --out runs/gpu-paper >> runs/gpu-paper.log 2>&1 &
wait
$PY -m swycc train "${COMMON[@]}" --method gan --time-budget 400 --set train.num_workers=12 \
    --set loss.adversarial_start=1000 --out runs/gpu-gan >> runs/gpu-gan.log 2>&1
