#!/usr/bin/env bash
# Creates .venv and installs the project (torch comes from pip's local wheels on machines that
# have them; elsewhere pip downloads it). Re-running is cheap: it skips when requirements are unchanged.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
reqs="${1:-requirements-dev.txt}"
stamp=".venv/.installed-$(cat requirements*.txt "$reqs" | sha1sum | cut -c1-12)"
if [ -f "$stamp" ]; then
    echo "environment up to date (.venv)"
    exit 0
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
echo "installing $reqs into .venv (torch is large: several minutes on a fresh machine)..."
.venv/bin/python -m pip install --quiet -r "$reqs"
rm -f .venv/.installed-*
touch "$stamp"
