#!/usr/bin/env bash
# Create ./.venv and install the project with its test and demo extras. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev]"
# Build the C++ kernels (FIR filter, ADA's resampling) now, once per machine, rather than in the first training
# run. Without a compiler this only warns: those ops then run as TensorFlow ops.
.venv/bin/python -c "from dnnlib import tf_quiet; tf_quiet.install(); from dnnlib.ops import upfirdn_3d as u; \
from dnnlib.ops import affine_resample_3d as a; \
print('setup.sh: FIR kernel', 'ready' if u.kernel_library() else 'unavailable, using TensorFlow ops'); \
print('setup.sh: resampling kernel', 'ready' if a.kernel_library() else 'unavailable, using TensorFlow ops')"
echo "setup.sh: environment ready in .venv"
