#!/usr/bin/env bash
# The shipped f8c4 model's CPU training (4 latent channels per 8x8 patch, SD-VAE's latent shape),
# in stages; re-run the same command to resume any of them.
#
#   scripts/train_shipped_f8c4.sh RUN_DIR PHOTO_SET
#
# Stage 1 (RUN_DIR): the `small` preset, SWYCC trained jointly, D_Initial's auxiliary loss MSE only
# (lambda_p = 0) plus each image's mean colour (loss.colour_weight), folder hue rotation on half the
# crops, 64 px crops from 1/16 of a photo's shorter side to all of it, batch 16, bf16 (swycc's
# default on a CPU with bf16 matrix units, fp32 on others; stages 1-3 ran in bf16, stage 4 in fp32
# on an AVX2-only machine), lr 3e-4, a cosine schedule whose length --time-budget 5100 sets from the
# measured step rate (6,135 steps on the 2-core AMD EPYC), a numbered export every 1000 steps
# (scripts/learning_curve.py). Stage 2 (RUN_DIR-ft128): fine-tuned from stage 1's export on 128 px
# crops (data.crop_size; 1/8 of the shorter side to all of it), batch 8, lr 1e-4, --time-budget 1500
# (880 steps there). Stage 3 (RUN_DIR-ft128b): stage 2's export trained on for longer at 128 px,
# batch 8, lr 2e-4 (warm-up 100), --time-budget 6000 (a 3,735-step cosine; the budget ran out at
# step 3,715): stage 2 alone fell short of ship-check's +2 dB over bicubic (+1.47 / +1.40 dB at 128
# / 256 px).
# Why 128 px after 64: on the *training* photos, stage 1's D_Initial decoded whole 256 px photos
# worse than the same photos cut into 128 px pieces (28.05 vs 28.44 dB, worst colour shift 3.8 vs
# 2.1 levels): GroupNorm had only seen 64 px crops. Stage 10 (VIEWS=1 with FROM naming stage 5b's
# export, e.g. the package's weights before stage 10 shipped: `git show 436eab4:swycc/pretrained/...`)
# is stage 5b's command with new views of the photos: half the crops turned by quarter turns
# (data.quarter_turns=0.5), crops of 1/16 to all of the shorter side, a fixed 905-step cosine (what
# --time-budget 5400 measured there). Stage 10's final export is what ships (float16; the default
# once ship-check passes a later one: scripts/ship_f8c4.sh, on PHOTO_SET/test).
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
RUN=$1
PHOTOS=$2
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${THREADS:-1}
COMMON=(--data "$PHOTOS/train" --no-progress --set loss.perceptual_weight=0
        --set loss.colour_weight=10 --set data.hue_rotation=0.5)
if [[ -z "${FROM:-}" ]]; then  # stages 1-3 (FROM names an export to start stage 5b from instead)
.venv/bin/python -m swycc train --preset small --out "$RUN" "${COMMON[@]}" \
  --time-budget 5100 \
  --set model.encoder.latent_channels=4 --set data.crop_scale_min=0.0625 \
  --set train.export_every=1000 --set train.sample_every=0 --set train.checkpoint_every=100
CROPS128=(--batch-size 8 --set data.crop_size=128 --set data.crop_scale_min=0.125
          --set train.sample_every=0 --set train.checkpoint_every=50)
.venv/bin/python -m swycc train --init "$RUN/export" --out "$RUN-ft128" "${COMMON[@]}" \
  "${CROPS128[@]}" --lr 1e-4 --time-budget 1500 --set train.warmup_steps=50 \
  --set train.export_every=250
.venv/bin/python -m swycc train --init "$RUN-ft128/export" --out "$RUN-ft128b" \
  "${COMMON[@]}" "${CROPS128[@]}" --lr 2e-4 --time-budget 6000 --set train.warmup_steps=100 \
  --set train.export_every=500
fi
# Stages 4 and 5 (history; README, *The f8c4 photo model*): stage 4 trained stage 3's export as
# the autoencoder alone (loss.diffusion_weight=0) on 128 + 256 px crops and plateaued at +1.70 /
# +1.78 dB over bicubic; stage 5 deepened stage 4's export and reached +1.78 / +1.91 dB by step
# 1,750 of 3,000 before both were lost with their machine.
# Stage 5b (RUN_DIR-deep): stage 3's export deepened (swycc.autoencoders.grow: 2 ResNet blocks per
# level in E and D_Initial, 2 at D_Initial's lowest resolution; the new blocks start as the
# identity, so step 0 decodes exactly as stage 3), then the autoencoder alone (loss.diffusion_weight
# =0: E and D_Initial on MSE + mean colour, D_Refine frozen and not run, ~3x cheaper steps) on 128
# and 256 px crops in one run (data.crop_sizes, 128 drawn twice as often: 256 px crops bring the
# 256 px colour shift under 2 levels), lr 1e-4, a cosine sized to --time-budget 7000 from the
# measured step rate (1,466 steps with two threads on the 2-core AMD EPYC), an export every 250.
# FROM=small-swycc-f8c4 starts it from the shipped weights instead of RUN_DIR-ft128b/export: stage
# 3's when it ran (stage 3's run directory was gone with its machine), stage 5b's now (a warm
# restart: the depth options are then no-ops).
FROM=${FROM:-$RUN-ft128b/export}
DEEP=(--out "$RUN-deep" --time-budget 7000 --set data.crop_scale_min=0.125)
if [[ -n "${VIEWS:-}" ]]; then  # stage 10
  DEEP=(--out "$RUN-views" --total-steps 905 --set data.crop_scale_min=0.0625
        --set data.quarter_turns=0.5)
fi
exec .venv/bin/python -m swycc train --init "$FROM" "${DEEP[@]}" \
  "${COMMON[@]}" --batch-size 8 --lr 1e-4 --set data.crop_size=none \
  --set data.crop_sizes=128,128,256 \
  --set model.encoder.num_res_blocks=2 --set model.decoder.num_res_blocks=2 \
  --set model.decoder.num_mid_blocks=2 --set loss.diffusion_weight=0 \
  --set train.warmup_steps=100 --set train.export_every=250 --set train.sample_every=0 \
  --set train.checkpoint_every=25
