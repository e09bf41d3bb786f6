#!/usr/bin/env bash
# The Kokkos Tools counter (src/profiling/kokkos_counters.cpp) loaded into moe-bench, with the
# GPU-readiness budgets of a fixed config (2 blocks, both MoE, 8 experts top-2, d_model 64):
#  - the library's own line: every timed step and the warm-up step are one "moe::step" region;
#  - moe-bench --counters prints the figures per timed step, and they stay within budget:
#    * host-blocking syncs (fences + deep copies + reductions into host values) <= 10. Today 9:
#      the batch upload (1 copy), the loss (1 reduce), the gradient norm (1 reduce), and per MoE
#      layer the balance loss and the z-loss (2 reduces) and the dispatch offsets (1 copy);
#    * kernel launches <= 110. Today 105 (254.5 two rounds ago, 148 before grouped biases and
#      the written-not-accumulated backward buffers):
#      per MoE layer ~26 for routing, dispatch and combine (top-k, softmax, z-loss, balance
#      counts, the dispatch plan's scans and fills) and 2 for the expert biases (one launch
#      each over every expert's rows: first bias + GELU, second bias) plus the GELU backward;
#      10 zero-fills of accumulated buffers; 15 for layernorm (forward, and backward as one
#      row pass plus one per-channel sum); residuals, attention biases and softmax, embedding,
#      cross-entropy, the batch copy and the optimizer (AdamW and the gradient norm: one launch
#      each over every tensor) make the rest.
#  - a normal run fences 0 times per step; MOE_PROFILE=1 (phase timing) fences at each phase,
#    and the counter sees those fences (moe::fence reports them on Kokkos 3.4).
# Usage: kokkos_counters.sh MOE_BENCH LIBMOE_KOKKOS_COUNTERS WORK_DIR
set -euo pipefail
bench=$1 lib=$2 work=$3
max_syncs=10 max_launches=110
mkdir -p "$work"
out="$work/counters.txt"
rm -f "$out"
shape=(--set model.d_model=64 --set model.d_ff=128 --set model.seq_len=64
       --set model.vocab_size=512 --set model.n_heads=4 --set model.n_layers=2)
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$2"; }

bench_out=$(KOKKOS_PROFILE_LIBRARY="$lib" KOKKOS_TOOLS_LIBS="$lib" MOE_COUNTERS_OUT="$out" \
  "$bench" --steps 3 "${shape[@]}")
line=$(cat "$out")
echo "$line"
[[ "$(field steps "$line")" == 4 ]] || { echo "FAIL: expected 4 step regions (1 warm-up + 3)"; exit 1; }

counters=$(grep '^counters:' <<<"$bench_out") || { echo "FAIL: moe-bench printed no counters line"; exit 1; }
echo "$counters"
syncs=$(field host_syncs_per_step "$counters")
launches=$(field launches_per_step "$counters")
fences=$(field fences_per_step "$counters")
awk -v s="$syncs" -v m="$max_syncs" 'BEGIN { exit !(s <= m) }' ||
  { echo "FAIL: $syncs host-blocking syncs per step > budget $max_syncs"; exit 1; }
awk -v l="$launches" -v m="$max_launches" 'BEGIN { exit !(l > 10 && l <= m) }' ||
  { echo "FAIL: $launches launches per step, budget (10, $max_launches]"; exit 1; }
[[ "$fences" == 0.0 ]] || { echo "FAIL: a normal run fenced $fences times per step"; exit 1; }

# --counters finds the library beside moe-bench by itself; phase timing fences and is counted.
prof=$(MOE_PROFILE=1 "$bench" --counters --steps 1 "${shape[@]}" | grep '^counters:')
echo "with MOE_PROFILE=1: $prof"
awk -v f="$(field fences_per_step "$prof")" 'BEGIN { exit !(f >= 8) }' ||
  { echo "FAIL: phase timing's fences were not counted"; exit 1; }
echo ok
