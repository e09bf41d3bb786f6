#!/usr/bin/env bash
# First command of the README: install, build, run the main job and its report.
# The main job is studies/quickstart.toml, a small version of the scaling-upper-bound study:
# dense and topk at 4 and 16 experts on 100k KJV tokens (validation and test held out across
# the whole book), 3 seeds, one point per MPI rank at a time on every core. Its report
# (runs/quickstart/report/report.md) has 95% intervals, paired per-seed comparisons against
# the dense model and the peak expert count chosen on validation and reported on test.
# Extra arguments go to moe-study (e.g. --stop-after 100 for a shorter try).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
RANKS=${MOE_QUICKSTART_RANKS:-$(nproc)}
start=$(date +%s)
mpiexec -n "$RANKS" ./build/src/moe-study studies/quickstart.toml --output-dir runs/quickstart "$@"
python3 analysis/report.py runs/quickstart
echo "study and report: $(($(date +%s) - start)) s on $RANKS ranks"
echo "report: runs/quickstart/report/report.md"
