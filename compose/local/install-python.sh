#!/usr/bin/env bash
# Create .venv and install the locked Python packages; quick no-op when uv.lock has not changed.
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTHON_BIN=${PYTHON_BIN:-python3.11}
UV_VERSION=$(sed -n 's/.*"uv==\([0-9.]*\)".*/\1/p' pyproject.toml)
stamp=.venv/.installed-$(sha256sum uv.lock | cut -c1-16)

[ -f "$stamp" ] && exit 0

if ! command -v "$PYTHON_BIN" >/dev/null 2>&1; then
  echo "Python 3.11 is missing: install python3.11 (with its venv module) or set PYTHON_BIN, then try again." >&2
  exit 2
fi
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $PYTHON_BIN"
  "$PYTHON_BIN" -m venv .venv
fi
if [ ! -x .venv/bin/uv ] || [ "$(.venv/bin/uv --version | awk '{print $2}')" != "$UV_VERSION" ]; then
  echo "==> installing uv $UV_VERSION into .venv"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi
echo "==> installing locked Python packages (uv sync --frozen --compile-bytecode)"
# --frozen: install exactly uv.lock, never re-resolve; the lock changes only by `uv lock`.
# --compile-bytecode: every process of the stack starts from .pyc files; compiling Django, Celery
# and the rest from source took ~2.6 s of CPU per process start where PYTHONDONTWRITEBYTECODE is set.
UV_PROJECT_ENVIRONMENT=.venv .venv/bin/uv sync --frozen --compile-bytecode --python .venv/bin/python --quiet
rm -f .venv/.installed-*
touch "$stamp"
