#!/usr/bin/env bash
# Install what the tests drive for real, besides the project venv. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE_DIR="${VRAG_CACHE_DIR:-$HOME/.cache/fiftyone-video-rag}"

# 1. A real Milvus standalone server from PyPI, in its own venv: its extra
#    pins pymilvus<2.4, and it needs pkg_resources (setuptools<70).
mvenv="$CACHE_DIR/milvus-server-venv"
if [ ! -f "$mvenv/.complete" ]; then
  echo "==> Installing the Milvus standalone server (milvus==2.3.5) in $mvenv"
  rm -rf "$mvenv"
  python3 -m venv "$mvenv"
  "$mvenv/bin/pip" install -q --progress-bar off --no-deps milvus==2.3.5 "setuptools<70"
  touch "$mvenv/.complete"
fi

# 2. The vLLM CPU server (own venv, cached) and its tiny Pixtral: Pixtral's
#    architecture and the tokenizer packaged in mistral_common, random weights.
if [ -f tests/vllm_server/setup.sh ]; then
  bash tests/vllm_server/setup.sh
fi

# 3. Headless Chromium for the App's browser tests (Debian package).
if ! command -v chromium >/dev/null 2>&1; then
  echo "==> Installing Debian chromium for the browser tests"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

# 4. espeak-ng (Debian) speaks the narration of the generated test videos.
if ! command -v espeak-ng >/dev/null 2>&1; then
  echo "==> Installing Debian espeak-ng for the narrated test videos"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq espeak-ng >/dev/null
fi
