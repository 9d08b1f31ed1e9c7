#!/usr/bin/env bash
# The f8c4 photo model's CPU training (4 latent channels per 8x8 patch, SD-VAE's latent shape):
# the `small` preset, SWYCC trained jointly, D_Initial's auxiliary loss MSE only (lambda_p = 0)
# plus each image's mean colour (loss.colour_weight), folder hue rotation on half the crops,
# crops from 1/16 of a photo's shorter side to all of it, bf16, a numbered export every 1000
# steps for the held-out learning curve (scripts/learning_curve.py).
#
#   scripts/train_shipped_f8c4.sh RUN_DIR PHOTO_SET     # re-run the same command to resume
#
# RUN_DIR belongs outside the work tree (a run outlives a session); PHOTO_SET is the folder that
# scripts/build_photo_set.sh writes (its train/ is used; test/ is never seen). THREADS (default
# 1) sets the torch threads: two processes with two threads each on a 2-core machine slowed this
# training tenfold (OpenMP oversubscription), so give it 2 only on an otherwise idle machine.
set -euo pipefail
if [[ $# -ne 2 ]]; then
  echo "usage: $0 RUN_DIR PHOTO_SET" >&2
  exit 2
fi
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${THREADS:-1}
exec .venv/bin/python -m swycc train --preset small --data "$2/train" --out "$1" --bf16 \
  --total-steps 20000 --no-progress \
  --set model.encoder.latent_channels=4 --set loss.perceptual_weight=0 \
  --set loss.colour_weight=10 --set data.hue_rotation=0.5 --set data.crop_scale_min=0.0625 \
  --set train.export_every=1000 --set train.sample_every=2000
