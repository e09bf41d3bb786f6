#!/usr/bin/env bash
# First command of the README: install, build, run the main job — the smoke study (topk, hash,
# MaskMoE and MoEC on the embedded synthetic corpus, a few seconds) — and its report: a table
# and figures in runs/smoke/report/. Extra arguments go to moe-study.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
./build/src/moe-study studies/smoke.toml --output-dir runs/smoke "$@"
python3 analysis/report.py runs/smoke
echo "report: runs/smoke/report/report.md"
