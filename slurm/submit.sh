#!/usr/bin/env bash
# Submits a study to SLURM, from the repository root (or wherever runs/ should go):
#   slurm/submit.sh [--whole] STUDY.toml [moe-study options]
# Default: a job array with one point per task, sized from `moe-study STUDY --list` (N points ->
# --array=0-(N-1)). --whole: one job (slurm/study.sbatch) running the whole study with srun.
# Settings (environment, all optional):
#   MOE_PARTITION      sbatch --partition
#   MOE_ACCOUNT        sbatch --account
#   MOE_TIME           sbatch --time (default 02:00:00 whole study, 01:00:00 per array task)
#   MOE_NODES          sbatch --nodes (default 1)
#   MOE_TASKS          MPI ranks per job (default: ranks_per_run for arrays, 1 for --whole)
#   MOE_CPUS_PER_TASK  sbatch --cpus-per-task (default 1)
#   MOE_GPUS_PER_NODE  sbatch --gpus-per-node (default: none)
#   MOE_ARRAY_LIMIT    at most this many array tasks at once (--array=0-N%LIMIT)
#   MOE_SBATCH_ARGS    anything else for sbatch
#   MOE_MODULES, MOE_BUILD_DIR, MOE_LAUNCHER, MOE_SRUN_ARGS: see slurm/common.sh
# Prints the job id. Job output: <job-name>-<jobid>.out, arrays <job-name>-<arrayid>_<task>.out.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
whole=0
if [ "${1:-}" = "--whole" ]; then
  whole=1
  shift
fi
if [ $# -lt 1 ]; then
  sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
study=$1
shift
MOE_BUILD_DIR=${MOE_BUILD_DIR:-build}
bin=${MOE_STUDY_BIN:-${MOE_BUILD_DIR}/src/moe-study}
[ -x "${bin}" ] || { echo "submit: moe-study not found at ${bin} (set MOE_BUILD_DIR)" >&2; exit 2; }

opts=(--nodes "${MOE_NODES:-1}" --cpus-per-task "${MOE_CPUS_PER_TASK:-1}")
[ -n "${MOE_PARTITION:-}" ] && opts+=(--partition "${MOE_PARTITION}")
[ -n "${MOE_ACCOUNT:-}" ] && opts+=(--account "${MOE_ACCOUNT}")
[ -n "${MOE_GPUS_PER_NODE:-}" ] && opts+=(--gpus-per-node "${MOE_GPUS_PER_NODE}")
# shellcheck disable=SC2206
[ -n "${MOE_SBATCH_ARGS:-}" ] && opts+=(${MOE_SBATCH_ARGS})
export MOE_BUILD_DIR MOE_SLURM_DIR="${here}"

if [ "${whole}" = 1 ]; then
  "${bin}" "${study}" "$@" --list > /dev/null  # bad input stops here, with its one line
  opts+=(--ntasks "${MOE_TASKS:-1}" --time "${MOE_TIME:-02:00:00}")
  sbatch --parsable --export=ALL "${opts[@]}" "${here}/study.sbatch" "${study}" "$@"
  exit 0
fi

list=$("${bin}" "${study}" "$@" --list)
n=$(printf '%s\n' "${list}" | grep -c .)
[ "${n}" -gt 0 ] || { echo "submit: ${study} has no points" >&2; exit 2; }
range="0-$((n - 1))"
[ -n "${MOE_ARRAY_LIMIT:-}" ] && range="${range}%${MOE_ARRAY_LIMIT}"
opts+=(--ntasks "${MOE_TASKS:-1}" --time "${MOE_TIME:-01:00:00}" --array "${range}")
echo "submit: ${n} points of ${study} as array ${range}" >&2
sbatch --parsable --export=ALL "${opts[@]}" "${here}/array.sbatch" "${study}" "$@"
