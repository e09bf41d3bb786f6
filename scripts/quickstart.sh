#!/usr/bin/env bash
# First command of the README: install, build, run the main job (a short training run of the
# default 2-layer, 8-expert top-2 model on the embedded synthetic corpus) into runs/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
mkdir -p runs
OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} ./build/src/moe-train --config studies/default.toml \
  --output runs/quickstart.h5 "$@"
