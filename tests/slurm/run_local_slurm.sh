#!/usr/bin/env bash
# The SLURM scripts for real: starts munged, slurmctld and slurmd for a one-node cluster on this
# machine (config, state, sockets and logs in a temporary directory, non-default ports), submits
# the smoke study as a job array (slurm/submit.sh) and as one job (--whole, 2 tasks), waits,
# checks every point file is complete (h5py, with ${MOE_TEST_PYTHON}), then checks the warning
# signal: a long point signalled like --signal=B:USR1 checkpoints, and a resubmission resumes it.
# Stops its daemons on exit. Needs root and Debian's slurm-wlm + munge (scripts/setup.sh);
# exits 77 (skipped) without them.
# usage: run_local_slurm.sh BIN_DIR SOURCE_DIR WORK_DIR
set -euo pipefail
bin=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
work=$3
py=${MOE_TEST_PYTHON:-python3}
for c in slurmctld slurmd sbatch squeue munged; do
  command -v "$c" >/dev/null || PATH=$PATH:/usr/sbin
  command -v "$c" >/dev/null || { echo "SKIP: $c not installed (scripts/setup.sh)"; exit 77; }
done
[ "$(id -u)" -eq 0 ] || { echo "SKIP: the local SLURM cluster needs root"; exit 77; }

rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)
tmp=$(mktemp -d /tmp/moe-slurm.XXXXXX)
chmod 755 "$tmp"
pids=()
cleanup() {
  set +e
  [ -n "${SLURM_CONF:-}" ] && scancel --quiet --user=root >/dev/null 2>&1
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  sleep 1
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  if [ "${keep:-0}" = 0 ]; then rm -rf "$tmp"; fi
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  keep=1
  for f in "$tmp"/*.log; do echo "--- $f"; tail -n 30 "$f"; done
  for f in "$work"/*.out; do [ -f "$f" ] && { echo "--- $f"; tail -n 20 "$f"; }; done
  exit 1
}

# munge with its own key and socket, so a system munged (if any) is left alone.
dd if=/dev/urandom of="$tmp/munge.key" bs=1024 count=1 status=none
chmod 0400 "$tmp/munge.key"
mkdir -p "$tmp/munge"
munged --force --key-file="$tmp/munge.key" --socket="$tmp/munge/munge.sock" \
  --pid-file="$tmp/munged.pid" --log-file="$tmp/munged.log" --seed-file="$tmp/munge.seed" \
  || fail "munged did not start"
for _ in $(seq 50); do [ -f "$tmp/munged.pid" ] && break; sleep 0.1; done
pids+=("$(cat "$tmp/munged.pid")")

host=$(hostname -s)
cpus=$(nproc)
mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
port=$((16000 + RANDOM % 2000))
mkdir -p "$tmp/state" "$tmp/spool"
cat > "$tmp/slurm.conf" <<CONF
ClusterName=moetest
SlurmctldHost=${host}
SlurmctldPort=${port}
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=${tmp}/munge/munge.sock
StateSaveLocation=${tmp}/state
SlurmdSpoolDir=${tmp}/spool
SlurmctldPidFile=${tmp}/slurmctld.pid
SlurmdPidFile=${tmp}/slurmd.pid
SlurmctldLogFile=${tmp}/slurmctld.log
SlurmdLogFile=${tmp}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=${host} CPUs=${cpus} RealMemory=${mem} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$tmp/slurm.conf
slurmctld -D -c -f "$SLURM_CONF" > "$tmp/slurmctld.out.log" 2>&1 &
pids+=($!)
slurmd -D -f "$SLURM_CONF" > "$tmp/slurmd.out.log" 2>&1 &
pids+=($!)
ok=0
for _ in $(seq 120); do
  state=$(sinfo -h -o %T 2>/dev/null | head -n 1 || true)
  case "$state" in idle*|mix*|alloc*) ok=1; break ;; esac
  sleep 0.5
done
[ "$ok" = 1 ] || fail "the node never became idle (state '${state:-}')"
echo "local SLURM up: node ${host}, ${cpus} CPUs, port ${port}"

wait_jobs() {  # job ids...; polls squeue with a timeout
  local deadline=$((SECONDS + 300))
  while [ $SECONDS -lt $deadline ]; do
    if [ -z "$(squeue -h -j "$(IFS=,; echo "$*")" 2>/dev/null)" ]; then return 0; fi
    sleep 1
  done
  squeue
  fail "jobs $* still queued or running after 300 s"
}

check_study() {  # output dir: every point complete in its run file and the index
  "$py" - "$1" <<'PY' || fail "study in $1 is not complete"
import json, sys
from pathlib import Path
import h5py
d = Path(sys.argv[1])
idx = json.loads((d / "index.json").read_text())
assert len(idx["points"]) == 4, idx
for p in idx["points"]:
    with h5py.File(d / p["file"], "r") as f:
        assert f.attrs["status"] == "complete", (p["id"], f.attrs["status"])
    assert p["status"] == "complete", p
print(f"{d.name}: {len(idx['points'])} points complete")
PY
}

export MOE_STUDY_BIN=$bin/moe-study MOE_BUILD_DIR=$(dirname "$bin")
cd "$work"
t0=$SECONDS
array_id=$("$src/slurm/submit.sh" "$src/studies/smoke.toml" --output-dir "$work/array") \
  || fail "submit.sh (array) failed"
whole_id=$(MOE_TASKS=2 "$src/slurm/submit.sh" --whole "$src/studies/smoke.toml" \
  --output-dir "$work/whole") || fail "submit.sh --whole failed"
echo "submitted array ${array_id}, whole-study job ${whole_id}"
wait_jobs "$array_id" "$whole_id"
echo "both jobs done in $((SECONDS - t0)) s"
for i in 0 1 2 3; do
  [ -f "$work/moe-study-array-${array_id}_${i}.out" ] || fail "no output moe-study-array-${array_id}_${i}.out"
done
[ -f "$work/moe-study-${whole_id}.out" ] || fail "no output moe-study-${whole_id}.out"
check_study "$work/array"
check_study "$work/whole"
# Same results whichever way a study runs: the array's and the one job's run files equal a
# direct run's, bit for bit (timings aside).
"$bin/moe-study" "$src/studies/smoke.toml" --output-dir "$work/direct" > "$work/direct.out" 2>&1 \
  || fail "direct moe-study run failed"
for d in array whole; do
  "$py" "$src/tests/e2e/compare_runs.py" "$work/direct" "$work/$d" > "$work/compare-$d.out" \
    || { cat "$work/compare-$d.out"; fail "$d results differ from the direct run"; }
  tail -1 "$work/compare-$d.out"
done

# The warning signal: a long run (4000 steps) signalled like --signal=B:USR1 checkpoints; the
# resubmission resumes it (and stops after 5 more steps to stay quick).
sed -e 's/steps = 30/steps = 4000/' -e 's/name = "smoke"/name = "long"/' \
  "$src/studies/smoke.toml" > "$work/long.toml"
long_id=$("$src/slurm/submit.sh" --whole "$work/long.toml" --output-dir "$work/long")
log="$work/long/type-topk_num_experts-4.log"
for _ in $(seq 600); do
  [ -f "$log" ] && grep -q "^step " "$log" && break
  sleep 0.1
done
grep -q "^step " "$log" 2>/dev/null || fail "the long run never started"
scancel --batch --signal=USR1 "$long_id"
wait_jobs "$long_id"
grep -q "stopped by a signal" "$work/moe-study-${long_id}.out" || fail "no stop after USR1"
[ -f "$work/long/type-topk_num_experts-4.h5.ckpt" ] || fail "no checkpoint after USR1"
again=$("$src/slurm/submit.sh" --whole "$work/long.toml" --output-dir "$work/long" --stop-after 5)
wait_jobs "$again"
grep -q "resumes from its checkpoint" "$work/moe-study-${again}.out" || fail "no resume"
echo "signal: checkpointed on USR1, resumed by the resubmission"
echo "ok"
