#!/usr/bin/env bash
# The test command (README, .ci/run): set up, install the browser, the Label Studio server and the
# PostgreSQL server binaries the integration tests use, build the default model if missing, and run
# the whole suite (which starts each server once for the session).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False
bash scripts/setup.sh
bash scripts/install_browser.sh
bash scripts/install_label_studio.sh
bash scripts/install_postgres.sh
.venv/bin/python -m training.build_default --if-missing
.venv/bin/python -m pytest -ra "$@"
