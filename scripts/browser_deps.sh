#!/usr/bin/env bash
# Installs what the browser test of `swycc web` drives: Debian's chromium and chromium-driver
# (headless Chromium through selenium). Nothing to do when both are on PATH.
# Exit 0: installed; 77: cannot install here (not root, or no apt-get); other: apt failed.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium and chromium-driver are missing; install them as root:" \
       "apt-get install -y chromium chromium-driver" >&2
  exit 77
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q chromium chromium-driver \
  || { apt-get update -q && apt-get install -y -q chromium chromium-driver; }
