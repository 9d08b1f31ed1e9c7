#!/usr/bin/env bash
# Copy a run's EMA export into the package as the shipped default model, stored in float16
# (half the size; loading restores float32). Usage: scripts/ship_pretrained.sh RUN_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:?usage: scripts/ship_pretrained.sh RUN_DIR}
.venv/bin/python - "$RUN" <<'PY'
import sys
import torch
from swycc.autoencoders import SWYCC
from swycc.autoencoders.pretrained import DEFAULT_NAME, PRETRAINED_DIR
model = SWYCC.from_pretrained(f"{sys.argv[1]}/export")
path = model.save_pretrained(PRETRAINED_DIR / DEFAULT_NAME, dtype=torch.float16)
print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
PY
