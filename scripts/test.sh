#!/usr/bin/env bash
# The test command (README, .ci/run): set up, install the browser and the Label Studio server the
# integration tests use, build the default model if missing, and run the whole suite.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False
bash scripts/setup.sh
bash scripts/install_browser.sh
bash scripts/install_label_studio.sh
.venv/bin/python -m training.build_default --if-missing
.venv/bin/python -m pytest -ra "$@"
