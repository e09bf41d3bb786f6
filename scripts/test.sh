#!/usr/bin/env bash
# Second command of the README: install what is missing, build, run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh -DMOE_WARNINGS_AS_ERRORS=ON
cd build
OPENBLAS_NUM_THREADS=1 ctest --output-on-failure -j"$(nproc)" "$@"
