#!/usr/bin/env bash
# Install the competitors of benchmarks/epoch_time.py, each into its own venv
# under benchmarks/.venvs/ (ignored by git). Idempotent: a venv whose packages
# import at the pinned versions is left as it is; any other is made anew.
#
#   bash benchmarks/setup.sh              # all three
#   bash benchmarks/setup.sh tf keras-jax # only some
#
# cnnlab and plain PyTorch eager run in the project's own .venv, not here.
# Versions are pinned so that runs months apart compare the same competitors;
# TF_VERSION, KERAS_VERSION, JAX_VERSION override them.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENVS="$HERE/.venvs"
PYTHON="${PYTHON:-python3}"
TF_VERSION="${TF_VERSION:-2.21.0}"
KERAS_VERSION="${KERAS_VERSION:-3.15.1}"
JAX_VERSION="${JAX_VERSION:-0.10.2}"
# Never let pip pick torch by itself: an unpinned torch is a multi-GB CUDA
# build. 2.13.0 is the CPU wheel the project uses (it lies on this disk).
TORCH_VERSION="2.13.0"

mkdir -p "$VENVS"

# make_venv NAME CHECK_IMPORT PACKAGES...
make_venv() {
    local name="$1" check="$2"
    shift 2
    local venv="$VENVS/$name"
    if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c "$check" >/dev/null 2>&1; then
        echo "[setup] $name: already installed ($venv)"
        return 0
    fi
    echo "[setup] $name: creating $venv with: $*"
    rm -rf "$venv"  # a half-made venv from an interrupted run
    "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet "$@"
    "$venv/bin/python" -c "$check"
    echo "[setup] $name: ok"
}

want() {  # want NAME: true when NAME was asked for (or nothing was)
    [[ ${#SELECTED[@]} -eq 0 ]] && return 0
    local s
    for s in "${SELECTED[@]}"; do [[ "$s" == "$1" ]] && return 0; done
    return 1
}

SELECTED=("$@")
for s in "${SELECTED[@]}"; do
    case "$s" in
        tf|keras-jax|keras-torch) ;;
        *) echo "[setup] unknown venv '$s'; expected tf, keras-jax or keras-torch" >&2; exit 2 ;;
    esac
done

if want tf; then
    make_venv tf "import os; os.environ['TF_CPP_MIN_LOG_LEVEL'] = '2'; import tensorflow as tf; assert tf.__version__ == '$TF_VERSION', tf.__version__; print('tensorflow', tf.__version__)" \
        "tensorflow-cpu==$TF_VERSION" numpy
fi
if want keras-jax; then
    # Keras's default backend is TensorFlow, which these venvs lack: name the backend.
    make_venv keras-jax "import os; os.environ['KERAS_BACKEND'] = 'jax'; import jax, keras; assert (keras.__version__, jax.__version__) == ('$KERAS_VERSION', '$JAX_VERSION'); print('keras', keras.__version__, 'jax', jax.__version__)" \
        "keras==$KERAS_VERSION" "jax[cpu]==$JAX_VERSION"
fi
if want keras-torch; then
    make_venv keras-torch "import os; os.environ['KERAS_BACKEND'] = 'torch'; import torch, keras; assert keras.__version__ == '$KERAS_VERSION' and torch.__version__.startswith('$TORCH_VERSION'); print('keras', keras.__version__, 'torch', torch.__version__)" \
        "torch==$TORCH_VERSION" "keras==$KERAS_VERSION"
fi

echo "[setup] done; venvs in $VENVS"
