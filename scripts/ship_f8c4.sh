#!/usr/bin/env bash
# Ship one export of the f8c4 photo run (scripts/train_shipped_f8c4.sh) into the package as
# swycc/pretrained/small-swycc-f8c4 (then make it DEFAULT_NAME in swycc/autoencoders/pretrained.py), only if `swycc ship-check` passes against the shipped
# 2-channel model (issue 18's criteria). Stored in float16; the check runs on that fp16 file.
# Usage: scripts/ship_f8c4.sh EXPORT_DIR PHOTO_SET   e.g. RUN/exports/step-00014000 data/photoset
# On a FAIL nothing in the package changes and the report stays in $REPORT (default: a temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."
EXPORT=${1:?usage: scripts/ship_f8c4.sh EXPORT_DIR PHOTO_SET}
PHOTOS=${2:?usage: scripts/ship_f8c4.sh EXPORT_DIR PHOTO_SET}
SW=.venv/bin/swycc
NAME=small-swycc-f8c4
DEST=swycc/pretrained/$NAME
REPORT=${REPORT:-$(mktemp -d)/ship-check}
STAGE=$(mktemp -d)/$NAME
mkdir -p "$(dirname "$STAGE")"
.venv/bin/python - "$EXPORT" "$STAGE" <<'PY'
import sys
import torch
from swycc.autoencoders import SWYCC
path = SWYCC.from_pretrained(sys.argv[1]).save_pretrained(sys.argv[2], dtype=torch.float16)
print(f"staged {path} ({path.stat().st_size / 1e6:.1f} MB, float16)")
PY
$SW latent-stats "$STAGE" --data "$PHOTOS/train" --no-progress
# checked where it will live, so that the report names the shipped path
OLD=$(mktemp -d)
if [ -d "$DEST" ]; then mv "$DEST" "$OLD/"; fi
mv "$STAGE" "$DEST"
if ! $SW ship-check --candidate "$DEST" --baseline swycc/pretrained/small-swycc-f8c2 \
    --data "$PHOTOS/test" --out "$REPORT" --no-progress; then
  rm -rf "$DEST"
  if [ -d "$OLD/$NAME" ]; then mv "$OLD/$NAME" "$DEST"; fi
  echo "not shipped: ship-check failed (report in $REPORT)" >&2
  exit 1
fi
.venv/bin/python - "$DEST" "$REPORT" <<'PY'
import sys
from swycc.autoencoders import SWYCC
from swycc.autoencoders.model_card import card_text, write_model_card
model = SWYCC.from_pretrained(sys.argv[1])
write_model_card(sys.argv[1], card_text(model, sys.argv[2]))
PY
rm -rf docs/pretrained/f8c4/ship-check && mkdir -p docs/pretrained/f8c4/ship-check
for f in report.md report.json grid.png; do
  if [ "$f" = grid.png ]; then cp "$REPORT/$f" docs/pretrained/f8c4/ship-check/
  else sed "s#$(realpath "$PHOTOS")#PHOTO_SET#g; s#$PHOTOS#PHOTO_SET#g" "$REPORT/$f" \
      > "docs/pretrained/f8c4/ship-check/$f"; fi
done
echo "shipped $DEST from $EXPORT; ship-check report in docs/pretrained/f8c4/ship-check"
