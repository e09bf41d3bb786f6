#!/usr/bin/env bash
# The Kokkos Tools counter (src/profiling/kokkos_counters.cpp) loaded into moe-bench: every
# timed step and the warm-up step are one "moe::step" region each, and the per-step figures are
# printed (launches, deep copies, reductions; Kokkos 3.4 reports no fence events). The budgets
# of the GPU-readiness work will be asserted here; for now the test checks the attribution.
# Usage: kokkos_counters.sh MOE_BENCH LIBMOE_KOKKOS_COUNTERS WORK_DIR
set -euo pipefail
bench=$1 lib=$2 work=$3
mkdir -p "$work"
out="$work/counters.txt"
rm -f "$out"
shape=(--set model.d_model=64 --set model.d_ff=128 --set model.seq_len=64
       --set model.vocab_size=512 --set model.n_heads=4 --set model.n_layers=2)
KOKKOS_PROFILE_LIBRARY="$lib" KOKKOS_TOOLS_LIBS="$lib" MOE_COUNTERS_OUT="$out" \
  "$bench" --steps 3 "${shape[@]}" >/dev/null
line=$(cat "$out")
echo "$line"
steps=$(sed -n 's/.* steps=\([0-9]*\) .*/\1/p' <<<"$line")
launches=$(sed -n 's/.* launches=\([0-9.]*\) .*/\1/p' <<<"$line")
[[ "$steps" == 4 ]] || { echo "FAIL: expected 4 step regions (1 warm-up + 3), got '$steps'"; exit 1; }
awk -v l="$launches" 'BEGIN { exit !(l > 10) }' || { echo "FAIL: launches per step '$launches'"; exit 1; }
echo ok
