# Shared by study.sbatch and array.sbatch (sourced inside the job): environment modules, the
# build directory, and forwarding SLURM's warning signal to moe-study.
#   MOE_MODULES    modules to `module load`, space-separated (default: none)
#   MOE_BUILD_DIR  where moe-study was built (default: build, relative to the submit directory)
#   MOE_LAUNCHER   how to start the ranks (default: srun; e.g. "mpiexec -n $SLURM_NTASKS")
#   MOE_SRUN_ARGS  extra srun arguments (e.g. "--mpi=pmi2 --gpus-per-task=1")
set -uo pipefail
cd "${SLURM_SUBMIT_DIR:-.}"
if [ -n "${MOE_MODULES:-}" ]; then
  # shellcheck disable=SC2086
  command -v module >/dev/null 2>&1 && module load ${MOE_MODULES}
fi
MOE_BUILD_DIR=${MOE_BUILD_DIR:-build}
MOE_STUDY_BIN=${MOE_STUDY_BIN:-${MOE_BUILD_DIR}/src/moe-study}
if [ ! -x "${MOE_STUDY_BIN}" ]; then
  echo "moe-study not found at ${MOE_STUDY_BIN} (set MOE_BUILD_DIR)" >&2
  exit 2
fi
# One OpenMP/OpenBLAS thread per rank unless told otherwise (ranks share the node's cores).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-${OMP_NUM_THREADS}}

# Runs "$@" in the background and forwards SIGUSR1/SIGTERM to it: SLURM signals the batch
# shell (--signal=B:USR1@120) before the time limit; moe-study checkpoints the running points,
# starts no new one and exits 0; a resubmission resumes them.
moe_run() {
  echo "moe: $(date -u +%FT%TZ) job ${SLURM_JOB_ID:-?} on $(hostname): $*"
  "$@" &
  local child=$!
  trap 'echo "moe: signal received, asking moe-study to checkpoint and stop"; kill -USR1 "${child}" 2>/dev/null' USR1 TERM
  local rc=0
  while true; do
    wait "${child}"
    rc=$?
    # wait returns >128 when a trapped signal interrupted it: keep waiting for the child.
    if kill -0 "${child}" 2>/dev/null; then continue; fi
    break
  done
  echo "moe: $(date -u +%FT%TZ) exit ${rc}"
  return "${rc}"
}

moe_launcher() {
  if [ -n "${MOE_LAUNCHER:-}" ]; then
    # shellcheck disable=SC2206
    LAUNCH=(${MOE_LAUNCHER})
  else
    # shellcheck disable=SC2206
    LAUNCH=(srun ${MOE_SRUN_ARGS:-})
  fi
}
