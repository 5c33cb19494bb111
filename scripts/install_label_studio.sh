#!/usr/bin/env bash
# Installs the Label Studio server into its own virtualenv (.ls-venv by default), kept apart
# from the project venv because its pinned dependencies clash with ours. Used by the
# `label_studio` integration tests; skips the install when the server is already there.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${LS_VENV:-$root/.ls-venv}"
python="${PYTHON:-python3}"
spec="${LABEL_STUDIO_SPEC:-label-studio==1.23.2}"
# Label Studio 1.23.2 asks for sentry-sdk>=2.16 with no upper bound, and sentry-sdk 3 refuses the options
# it starts with ("Unknown option 'send_default_pii'"): the server exits at start-up.
pins="sentry-sdk>=2.16,<3"

# A server installed before the pin (sentry-sdk 3) is not "already installed": the install below mends it.
if [ -x "$venv/bin/label-studio" ] && "$venv/bin/python" -c \
        "import label_studio, sentry_sdk; assert int(sentry_sdk.VERSION.split('.')[0]) < 3" 2>/dev/null; then
    echo "Label Studio already installed in $venv ($("$venv/bin/python" -c 'import label_studio; print(label_studio.__version__)'))"
    exit 0
fi

echo "Creating $venv and installing $spec (a few minutes)..."
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "$spec" "$pins"
# Not `label-studio --version`: it asks PyPI for the latest release and hangs offline.
echo "Installed: label-studio $("$venv/bin/python" -c 'import label_studio; print(label_studio.__version__)')"
echo "Run the integration tests with: .venv/bin/python -m pytest -m label_studio"
