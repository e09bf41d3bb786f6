#!/usr/bin/env bash
# The GPU check of issue 18, in one script for a machine with an NVIDIA GPU and a CUDA Kokkos:
#   Kokkos_ROOT=/path/to/kokkos-cuda scripts/gpu_check.sh [BUILD_DIR]   (default build-gpu)
# It builds the suite against that Kokkos (with NCCL when found), runs the kernel tests and
# gradient checks on the device, a 2-rank run over NCCL and over MPI, and moe-bench at the
# reference shape with the launch/sync counter in each train.matmul_precision (fp32, tf32, bf16),
# then prints step time, tokens/s and the model FLOP utilisation against the device's peak for
# that precision (FP32, or the TF32 / BF16 tensor-core peak). Without a GPU or a CUDA Kokkos it
# stops at once with one line and exit 2. Environment: Kokkos_ROOT (required), MPIEXEC (default mpiexec),
# JOBS (build parallelism, default nproc), CMAKE_ARGS (extra configure arguments).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-gpu}
mpiexec=${MPIEXEC:-mpiexec}
fail() { echo "gpu_check: $*" >&2; exit 2; }

command -v nvidia-smi >/dev/null 2>&1 || fail "no NVIDIA GPU here (nvidia-smi not found)"
gpus=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null || true)
[[ -n "$gpus" ]] || fail "no NVIDIA GPU here (nvidia-smi lists none)"
ngpu=$(wc -l <<<"$gpus")
gpu=$(head -1 <<<"$gpus")
[[ -n "${Kokkos_ROOT:-}" ]] || fail "set Kokkos_ROOT to a Kokkos built with CUDA (>= 4.7.03 for CUDA 13)"
kcfg=$(find "$Kokkos_ROOT" -name KokkosCore_config.h -print -quit 2>/dev/null || true)
[[ -n "$kcfg" ]] && grep -q '^#define KOKKOS_ENABLE_CUDA' "$kcfg" ||
  fail "Kokkos at $Kokkos_ROOT has no CUDA backend (KOKKOS_ENABLE_CUDA not in KokkosCore_config.h)"
kver=$(sed -n 's/^#define KOKKOS_VERSION \([0-9]*\).*/\1/p' "$kcfg")

# Dense peaks in TFLOP/s (vendor data sheets, no sparsity): FP32, TF32, BF16.
peaks() {
  case "$1" in
    *H200*) echo "67 494.7 989.4" ;;
    *H100*PCIe*) echo "51 378 756" ;;
    *H100*) echo "67 494.7 989.4" ;;
    *A100*) echo "19.5 156 312" ;;
    *) echo "" ;;
  esac
}
read -r peak_fp32 peak_tf32 peak_bf16 <<<"$(peaks "$gpu")" || true
echo "gpu_check: $ngpu x $gpu, Kokkos $kver at $Kokkos_ROOT, build in $build"

step() { echo; echo "== $*"; }
step "build"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DKokkos_ROOT="$Kokkos_ROOT" \
  -DMOE_ENABLE_NCCL=ON -DMOE_WARNINGS_AS_ERRORS=ON ${CMAKE_ARGS:-} >/dev/null
cmake --build "$build" -j"${JOBS:-$(nproc)}"

step "kernel tests and gradient checks on the device"
(cd "$build" && ctest --output-on-failure -R 'kernel_test|unit_test_model|unit_test_router|kokkos_counters')

small=(--steps 3 --set model.d_model=128 --set model.d_ff=256 --set model.seq_len=64
       --set model.n_layers=2 --set model.vocab_size=1024 --set train.batch_size=8)
step "2 ranks, token exchange over NCCL"
# Two ranks on one GPU cannot use NCCL: auto then says so in one line and uses MPI.
mode=on; [[ "$ngpu" -ge 2 ]] || mode=auto
"$mpiexec" -n 2 "$build/src/moe-bench" "${small[@]}" --set parallel.nccl=$mode
step "2 ranks, token exchange over MPI"
"$mpiexec" -n 2 "$build/src/moe-bench" "${small[@]}" --set parallel.nccl=off

# The reference shape in each train.matmul_precision: FP32 against the FP32 peak, TF32 against
# the TF32 tensor-core peak, bf16 against the BF16 one (and each against FP32 as a yardstick).
for prec in fp32 tf32 bf16; do
  step "moe-bench at the reference shape (train.matmul_precision = $prec)"
  out=$("$build/src/moe-bench" --steps 10 --counters --set train.matmul_precision=$prec)
  echo "$out"
  field() { sed -n "s/.* \{0,1\}$1=\([0-9.]*\).*/\1/p" <<<"$out" | head -1; }
  gflops=$(field model_gflops)
  echo
  echo "precision=$prec step_s=$(field step_s) tokens_per_s=$(field tokens_per_s) model_tflops=$(awk -v g="$gflops" 'BEGIN{printf "%.2f", g/1000}')"
  if [[ -n "${peak_fp32:-}" ]]; then
    case $prec in fp32) peak=$peak_fp32 ;; tf32) peak=$peak_tf32 ;; bf16) peak=$peak_bf16 ;; esac
    awk -v g="$gflops" -v f="$peak_fp32" -v p="$peak" -v m="$prec" 'BEGIN {
      printf "MFU (%s) vs its peak %.1f TFLOP/s: %.2f%%; vs the FP32 peak %.1f: %.2f%%\n",
             m, p, 100*g/1000/p, f, 100*g/1000/f }'
  else
    echo "no peak table entry for '$gpu': MFU not computed"
  fi
done
echo "gpu_check: done"
