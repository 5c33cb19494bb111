#!/usr/bin/env bash
# Installs Debian's PostgreSQL server binaries (initdb, pg_ctl) for the store's PostgreSQL tests and
# benchmark; skips when they are already there. The tests start their own throw-away server as the
# `postgres` user (PostgreSQL refuses to run as root), so the package's own cluster is not used.
set -euo pipefail

if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then
    echo "PostgreSQL server already installed ($(ls -d /usr/lib/postgresql/*/ 2>/dev/null | head -1))"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "PostgreSQL is not installed and this is not root: run 'sudo apt-get install postgresql' (or set PG_BIN to a folder with initdb and pg_ctl); the PostgreSQL tests are skipped until then." >&2
    exit 0
fi
echo "Installing Debian's postgresql package (a minute)..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d keeps the package from starting its own cluster service in a container.
apt-get install -y -qq postgresql >/dev/null
echo "Installed: $(ls -d /usr/lib/postgresql/*/bin | head -1)"
