#!/usr/bin/env bash
# Issue 12, item 3: train a candidate for the shipped model on real photos, then let
# `swycc ship-check` decide whether it may replace the shipped one (it ships only on PASS).
#
#   scripts/train_photo_model_gpu.sh PHOTOSET [RUN]
#
# PHOTOSET: a folder built by scripts/build_photo_set.sh (train/ and test/, whole photos from
# several packages); the candidate trains on train/ and is judged on test/ (never seen).
# RUN (default runs/photo-small): the run directory; re-running resumes, then re-checks.
# Sized for one lent GPU (the device tool: at most 10 minutes a command, so the default budget
# is 540 s of training; call it again to go on). The shipped f8c4 model's recipe
# (scripts/train_shipped_f8c4.sh: `small`, 4 latent channels, MSE + mean-colour loss, hue
# rotation) at the GPU recipe's batch 256, bf16 (scripts/train_pretrained_gpu.sh), on random
# square crops of 15-100% of each photo's shorter side, so that whole 128 px photos (what
# ship-check decodes) are inside the scales it saw. Ships with scripts/ship_f8c4.sh (only on a
# ship-check PASS against the shipped 2-channel model).
# Environment: DEVICE (cuda), BUDGET (540 s), STEPS (20000: the schedule), PRESET (small),
# BATCH (256), EXTRA (more swycc train options, e.g. for a CPU smoke test), PYTHON.
set -euo pipefail
if [[ $# -lt 1 ]]; then
    echo "usage: $0 PHOTOSET [RUN]" >&2
    exit 2
fi
photos=$1
run=${2:-runs/photo-small}
for d in "$photos/train" "$photos/test"; do
    if [[ ! -d $d ]]; then
        echo "$0: $d is not a folder (build it with scripts/build_photo_set.sh)" >&2
        exit 2
    fi
done
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DEVICE=${DEVICE:-cuda}
bf16=(); [[ $DEVICE == cuda* ]] && bf16=(--bf16 --set train.num_workers=12)
# shellcheck disable=SC2086
$PY -m swycc train --preset "${PRESET:-small}" --data "$photos/train" --out "$run" \
    --device "$DEVICE" "${bf16[@]}" --batch-size "${BATCH:-256}" --lr 5e-4 \
    --total-steps "${STEPS:-20000}" --time-budget "${BUDGET:-540}" --no-progress \
    --set model.unet.predict_residual=true --set data.crop_scale_min=0.15 \
    --set train.warmup_steps=500 --set train.ema_decay=0.9995 \
    --set train.checkpoint_every=1000 --set train.sample_every=0 \
    --set model.encoder.latent_channels=4 --set loss.perceptual_weight=0 \
    --set loss.colour_weight=10 --set data.hue_rotation=0.5 ${EXTRA:-}
status=0
REPORT="$run/ship-check" scripts/ship_f8c4.sh "$run/export" "$photos" || status=$?
if [[ $status -eq 0 ]]; then
    echo "shipped $run/export; now run scripts/pretrained_report.sh and update the README"
elif [[ $status -eq 1 ]]; then
    echo "not shipped: the candidate fails ship-check ($run/ship-check/report.md)"
else
    exit "$status"
fi
