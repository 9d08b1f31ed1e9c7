#!/usr/bin/env bash
# Real photos from Debian packages (desktop backgrounds, lxqt-themes, skimage's and matplotlib's
# sample photos, digikam-data) -> OUT/train, OUT/test, OUT/sources.json.
#
#   scripts/build_photo_set.sh OUT [DEBS_DIR]
#
# Downloads the packages into DEBS_DIR (default: OUT.debs; kept for reruns) with
# `apt-get download` (no root needed for the download), then runs `python -m swycc.data.photoset`
# with the verdicts by eye in scripts/photo_set_overrides.txt, holding out 20 % of each package's
# photo families for OUT/test (8 of the 13 packages hold photos: 56 photos, 10 of them in test,
# Debian bookworm). Extra options for the builder go in PHOTOSET_ARGS, e.g.
# PHOTOSET_ARGS="--format jpg --keep-illustrations". Rerunning is cheap: analyses are cached
# and files already written are kept.
set -euo pipefail

if [[ $# -lt 1 ]]; then
    echo "usage: $0 OUT [DEBS_DIR]" >&2
    exit 2
fi
out=$1
debs=${2:-$out.debs}
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python}
# keep in step with DEBIAN_PACKAGES in swycc/data/photoset_sources.py
packages=(mate-backgrounds plasma-workspace-wallpapers gnome-backgrounds ukui-wallpapers
          sway-backgrounds desktop-base lomiri-wallpapers lomiri-wallpapers-16.04
          lomiri-wallpapers-20.04 lxqt-themes python3-skimage python-matplotlib-data digikam-data)

mkdir -p "$debs"
missing=()
for p in "${packages[@]}"; do
    compgen -G "$debs/${p}_*.deb" > /dev/null || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    if ! command -v apt-get > /dev/null; then
        echo "apt-get not found; on a Debian or Ubuntu machine run:" >&2
        echo "  cd $debs && apt-get download ${missing[*]}" >&2
        echo "and copy the .deb files into $debs" >&2
        exit 2
    fi
    (cd "$debs" && apt-get download "${missing[@]}") || {
        echo "apt-get download failed; run \`apt-get update\` (as root) and retry:" >&2
        echo "  cd $debs && apt-get download ${missing[*]}" >&2
        exit 2
    }
fi

# shellcheck disable=SC2086
"$python" -m swycc.data.photoset --out "$out" --overrides "$here/photo_set_overrides.txt" \
    --holdout-fraction 0.2 ${PHOTOSET_ARGS:-} "$debs"/*.deb
