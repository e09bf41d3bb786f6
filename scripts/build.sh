#!/usr/bin/env bash
# Configures and builds moe-suite into build/ (Release, -Wall -Wextra). Extra arguments go to
# the CMake configure step, e.g. scripts/build.sh -DMOE_WARNINGS_AS_ERRORS=ON.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
