#!/usr/bin/env bash
# Regenerates the figures and tables of the README's "Shipped model" section on CPU (~45 min on
# 2 cores): the demo and the steps and guidance experiments on the shipped f8c4 model
# (docs/pretrained/f8c4/); with the GPU runs of scripts/train_pretrained_gpu.sh present, the same
# for the 2-channel model's paper-default twin and a side-by-side `swycc eval` of the 2-channel
# models on 128 held-back crops (docs/pretrained/f8c2/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
SW=.venv/bin/swycc
D=docs/pretrained/f8c4
$SW demo --out $D --steps 20 --samples 4 --no-progress
$SW experiment steps --sweep-guidance 0 0.5 1 2 --samples 2 --no-progress --out $D/steps
$SW experiment guidance --samples 2 --no-progress --out $D/guidance
C2=docs/pretrained/f8c2
if [ -d runs/gpu-paper/export ]; then
  $SW demo --checkpoint runs/gpu-paper/export --out $C2/paper-default --steps 20 --samples 4 \
      --no-progress
  $SW experiment steps --checkpoint runs/gpu-paper/export --sweep-guidance 0 0.5 1 2 \
      --samples 2 --no-progress --out $C2/paper-default/steps
  $SW experiment guidance --checkpoint runs/gpu-paper/export --samples 2 --no-progress \
      --out $C2/paper-default/guidance
  $SW eval --compare swycc/pretrained/small-swycc-f8c2 runs/gpu-paper/export --decoder initial \
      --held-out 128 --no-progress --out $C2/eval-d-initial \
      --metrics psnr,ssim,perceptual_effnetlite0,fd_effnetlite0,mmd_effnetlite0
fi
if [ -d runs/gpu-paper/export ] && [ -d runs/gpu-gan/export ]; then
  $SW eval --compare swycc/pretrained/small-swycc-f8c2 runs/gpu-paper/export runs/gpu-gan/export \
      --held-out 128 --steps 20 --guidance 0.5 --no-progress --out $C2/eval \
      --metrics psnr,ssim,perceptual_effnetlite0,fd_effnetlite0,mmd_effnetlite0
fi
