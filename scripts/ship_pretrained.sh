#!/usr/bin/env bash
# Copy a run's EMA export into the package as one of the shipped models, stored in float16
# (half the size; loading restores float32), without a check: how the 2-channel model was
# shipped (scripts/train_pretrained_gpu.sh). The default f8c4 model ships with
# scripts/ship_f8c4.sh, which ship-checks first. Usage: scripts/ship_pretrained.sh RUN_DIR NAME
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:?usage: scripts/ship_pretrained.sh RUN_DIR NAME}
NAME=${2:?usage: scripts/ship_pretrained.sh RUN_DIR NAME (small-swycc-f8c2 or small-swycc-f8c4)}
.venv/bin/python - "$RUN" "$NAME" <<'PY'
import sys
import torch
from swycc.autoencoders import SWYCC
from swycc.autoencoders.pretrained import PRETRAINED_DIR, SHIPPED_NAMES
if sys.argv[2] not in SHIPPED_NAMES:
    sys.exit(f"ship_pretrained.sh: {sys.argv[2]!r} is not a shipped name ({', '.join(SHIPPED_NAMES)})")
model = SWYCC.from_pretrained(f"{sys.argv[1]}/export")
path = model.save_pretrained(PRETRAINED_DIR / sys.argv[2], dtype=torch.float16)
print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
PY
