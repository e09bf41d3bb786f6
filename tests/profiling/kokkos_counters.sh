#!/usr/bin/env bash
# The Kokkos Tools counter (src/profiling/kokkos_counters.cpp) loaded into moe-bench, with the
# GPU-readiness budgets of a fixed config (2 blocks, both MoE, 8 experts top-2, d_model 64):
#  - the library's own line: every timed step and the warm-up step are one "moe::step" region;
#  - moe-bench --counters prints the figures per timed step, and they stay within budget:
#    * host-blocking syncs (fences + deep copies + reductions into host values) <= 10. Today 7
#      (9 at the start of this round, 49 when issue 18 was filed): the batch upload (1 copy), the
#      loss (1 reduce), the gradient norm (1 reduce), and per MoE layer the router's balance and
#      z-loss (1 reduce) and the dispatch offsets (1 copy);
#    * kernel launches <= 55. Today 50 (105 at the start of this round, 254.5 when issue 18 was
#      filed). Per MoE layer 11: routing 3 (softmax + top-k + each token's lse^2; the balance
#      statistics, one team per expert, and the z-loss's sum; one fused backward), dispatch 3 (rank the copies, one
#      team per expert; place them and gather their rows; the backward), combine 2, experts 3
#      (first bias + GELU, second bias, GELU backward; the products are library calls). Per block
#      8 more: residual add + layernorm twice (fused), layernorm backward twice (a row pass and
#      the per-channel sums), the attention softmax and its backward. Once per step 12: the first
#      layernorm, the final layernorm's backward (2), embedding forward and backward,
#      cross-entropy forward and backward, the loss sum, the batch copy, zeroing the gradients,
#      the gradient norm and AdamW (with clipping's factor). The budget leaves 5 for the
#      occasional workspace fill (moe::ones, when an expert gets more rows than ever before).
#    * library products (gemm_calls_per_step, counted as a cuBLAS build issues them) <= 210.
#      Today 201: per block 24 for attention (6 products, each split into min(B, H) = 4 calls
#      over sequences and heads), 8 for the projections, 3 for the router and 8 per expert (2
#      forward; 6 backward, the bias sums included), i.e. 64 for 8 experts; 3 for the LM head.
#  - a normal run fences 0 times per step; MOE_PROFILE=1 (phase timing) fences at each phase,
#    and the counter sees those fences (moe::fence reports them on Kokkos 3.4).
# Usage: kokkos_counters.sh MOE_BENCH LIBMOE_KOKKOS_COUNTERS WORK_DIR
set -euo pipefail
bench=$1 lib=$2 work=$3
max_syncs=10 max_launches=55 max_gemm_calls=210
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
gemm_calls=$(field gemm_calls_per_step "$counters")
awk -v g="$gemm_calls" -v m="$max_gemm_calls" 'BEGIN { exit !(g > 0 && g <= m) }' ||
  { echo "FAIL: $gemm_calls library calls per step, budget (0, $max_gemm_calls]"; exit 1; }
[[ "$fences" == 0.0 ]] || { echo "FAIL: a normal run fenced $fences times per step"; exit 1; }

# --counters finds the library beside moe-bench by itself; phase timing fences and is counted.
prof=$(MOE_PROFILE=1 "$bench" --counters --steps 1 "${shape[@]}" | grep '^counters:')
echo "with MOE_PROFILE=1: $prof"
awk -v f="$(field fences_per_step "$prof")" 'BEGIN { exit !(f >= 8) }' ||
  { echo "FAIL: phase timing's fences were not counted"; exit 1; }
echo ok
