#!/usr/bin/env bash
# Sets roadpilot up in ./.venv and builds its C parts. Idempotent: when nothing changed it only
# checks a stamp and lets scons confirm the build is current (a few seconds).
#   --tests   also installs what the tests need outside Python: Debian's chromium for the browser tests
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY=${PYTHON:-python3.11}
if ! command -v "$PY" >/dev/null; then
  echo "setup: $PY not found; roadpilot needs Python 3.11 (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi

# pip warns about unreachable local index mirrors on some machines; that noise is filtered out.
pip_install() {
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "$@" 2> >(grep -v "is ignored" >&2)
}

stamp=.venv/.roadpilot-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing roadpilot and its pinned dependencies into .venv (first run takes a minute)"
  pip_install -e ".[dev]"
  echo "$want" > "$stamp"
fi

if [ "${1:-}" = "--tests" ] && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian's chromium for the browser tests (about 30 s)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "setup: could not install chromium; browser tests will fail" >&2
  else
    echo "setup: /usr/bin/chromium is missing and this is not root: install Debian's chromium package" >&2
  fi
fi

.venv/bin/scons -Q -j"$(nproc)" 2>&1 | { grep -v "is up to date" || true; }
test "${PIPESTATUS[0]}" -eq 0
