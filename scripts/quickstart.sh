#!/usr/bin/env bash
# The main job: show SWYCC on held-back crops of the embedded photo set and on whole test-split
# photos shipped in the package (CPU, no download).
# Extra arguments go to `swycc demo`, e.g. `--train` to train a fresh model for 8 minutes first.
# `--web` instead serves the browser page (`swycc web`; its other options follow).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
if [ "${1:-}" = "--web" ]; then
  shift
  exec .venv/bin/swycc web "$@"
fi
exec .venv/bin/swycc demo "$@"
