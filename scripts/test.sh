#!/usr/bin/env bash
# The test suite, from nothing: system packages, a virtual environment, the project, pytest.
# Used by the README and by CI (.ci/run) alike. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {  # install Debian packages that are missing (needs root; skipped without apt)
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "test.sh: installing ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "test.sh: cannot install ${missing[*]} (not root); tests that need them will skip" >&2
  fi
}
apt_install redis-server prometheus

python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q -e '.[test]'
.venv/bin/ruff check --quiet .
exec .venv/bin/pytest "$@"
