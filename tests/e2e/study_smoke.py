#!/usr/bin/env python3
"""End to end: moe-study runs studies/smoke.toml on one rank.

Checks (run files read with h5py, the index with json):
- --list prints one "<index> <id> <key=value ...>" line per point, ids as documented;
- a whole run completes every point: index statuses, final losses and the run files agree;
- a rerun skips every complete point (files untouched, no point starts, fast);
- --point I runs point I only; --stop-after leaves a checkpointed, `stopped` point that a
  whole-study rerun resumes (same final loss as the uninterrupted run) and completes;
- SIGTERM mid-run: the run checkpoints, moe-study exits 0 without starting another point,
  a rerun resumes it;
- bad input (missing file, bad key, --point out of range, unknown option): exit 2, one line,
  no output directory.
usage: study_smoke.py MOE_STUDY STUDIES_DIR WORKDIR
"""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py

study_bin, studies = os.path.abspath(sys.argv[1]), Path(sys.argv[2]).resolve()
work = Path(sys.argv[3]).resolve() / "study_smoke"
shutil.rmtree(work, ignore_errors=True)
work.mkdir(parents=True)
smoke = str(studies / "smoke.toml")
IDS = ["type-topk_num_experts-4", "type-hash_num_experts-4", "type-maskmoe_num_experts-4",
       "type-moec_cluster_size-2_num_experts-4"]


def run(*args, expect=0):
    t0 = time.time()
    p = subprocess.run([study_bin, *map(str, args)], capture_output=True, text=True, cwd=work)
    dt = time.time() - t0
    print(f"$ moe-study {' '.join(map(str, args))}  ({dt:.2f} s, rc {p.returncode})")
    print(p.stdout[-3000:], p.stderr[-2000:], sep="")
    assert p.returncode == expect, (p.returncode, p.stderr)
    return p, dt


def index(d):
    return json.loads((d / "index.json").read_text())


def file_status(path):
    with h5py.File(path, "r") as f:
        return f.attrs["status"], float(f.attrs.get("final_loss", float("nan")))


def check_complete(d, points):
    idx = index(d)
    assert idx["study"] == "smoke", idx["study"]
    assert [p["id"] for p in idx["points"]] == IDS
    for p in idx["points"]:
        if p["id"] not in points:
            continue
        assert p["status"] == "complete", p
        assert p["file"] == p["id"] + ".h5"
        status, loss = file_status(d / p["file"])
        assert status == "complete", (p["id"], status)
        assert abs(loss - p["final_loss"]) < 1e-12, (loss, p["final_loss"])
        assert p["final_val_loss"] > 0
        assert not (d / (p["file"] + ".ckpt")).exists(), "checkpoint of a complete point kept"
    return idx


def digest(d):
    return {f.name: (f.stat().st_mtime_ns, hashlib.sha256(f.read_bytes()).hexdigest())
            for f in sorted(d.glob("*.h5"))}


# --list
p, _ = run(smoke, "--list")
lines = p.stdout.strip().splitlines()
assert len(lines) == 4, lines
for i, line in enumerate(lines):
    f = line.split(" ")
    assert f[0] == str(i) and f[1] == IDS[i], line
assert lines[3].split(" ", 2)[2] == \
    "router.type=moec router.cluster_size=2 model.num_experts=4", lines[3]

# Whole study, one rank.
one = work / "one"
p, t_full = run(smoke, "--output-dir", one)
assert p.stdout.count(" starts ") == 4 and "4/4 complete" in p.stdout
idx = check_complete(one, IDS)
params = {q["id"]: q["params"] for q in idx["points"]}
assert params[IDS[3]] == {"router.type": "moec", "router.cluster_size": 2,
                          "model.num_experts": 4}, params[IDS[3]]
assert params[IDS[0]] == {"router.type": "topk", "model.num_experts": 4}
losses = {q["id"]: q["final_loss"] for q in idx["points"]}

# A rerun skips complete points: nothing starts, files untouched.
before = digest(one)
p, t_rerun = run(smoke, "--output-dir", one)
assert " starts " not in p.stdout and "4/4 complete" in p.stdout, p.stdout
assert digest(one) == before
print(f"whole study {t_full:.2f} s, rerun {t_rerun:.2f} s")
assert t_rerun < max(1.0, t_full / 2)

# --point and --stop-after: point 1 stops with a checkpoint, only it is touched.
part = work / "part"
p, _ = run(smoke, "--output-dir", part, "--point", 1, "--stop-after", 15)
idx = index(part)
assert [q["status"] for q in idx["points"]] == ["pending", "stopped", "pending", "pending"], idx
assert (part / (IDS[1] + ".h5.ckpt")).exists()
assert file_status(part / (IDS[1] + ".h5"))[0] == "running"
assert not (part / (IDS[0] + ".h5")).exists()
# The whole study resumes point 1 and runs the others.
p, _ = run(smoke, "--output-dir", part)
assert f"{IDS[1]} resumes from its checkpoint" in p.stdout, p.stdout
assert p.stdout.count(" starts ") == 3
idx = check_complete(part, IDS)
for q in idx["points"]:  # a resumed run ends where the uninterrupted one did
    assert abs(q["final_loss"] - losses[q["id"]]) < 1e-5, (q["id"], q["final_loss"])
with h5py.File(part / (IDS[1] + ".h5"), "r") as f:
    assert int(f.attrs["resume_count"]) == 1
    assert list(f["train/step"][:]) == list(range(30))
# --point of a complete point: nothing to do.
p, _ = run(smoke, "--output-dir", part, "--point", 2)
assert "already complete" in p.stdout

# SIGTERM mid-run: a longer variant of the smoke study (same points, 4000 steps).
long_study = work / "long.toml"
long_study.write_text(Path(smoke).read_text().replace("steps = 30", "steps = 4000")
                      .replace('name = "smoke"', 'name = "long"'))
sig = work / "sig"
proc = subprocess.Popen([study_bin, str(long_study), "--output-dir", str(sig)], cwd=work,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
log = sig / (IDS[0] + ".log")
deadline = time.time() + 60
while time.time() < deadline and not (log.exists() and "step " in log.read_text()):
    time.sleep(0.05)
assert log.exists(), "the first point never started"
proc.send_signal(signal.SIGTERM)
out, err = proc.communicate(timeout=60)
print(out, err)
assert proc.returncode == 0, (proc.returncode, err)
assert "stopped by a signal" in out and out.count(" starts ") == 1, out
idx = index(sig)
assert [q["status"] for q in idx["points"]] == ["stopped", "pending", "pending", "pending"], idx
assert (sig / (IDS[0] + ".h5.ckpt")).exists()
# The rerun resumes it (stopped again after 5 more steps, to stay quick).
p, _ = run(long_study, "--output-dir", sig, "--stop-after", 5)
assert f"{IDS[0]} resumes from its checkpoint" in p.stdout, p.stdout
with h5py.File(sig / (IDS[0] + ".h5"), "r") as f:
    assert int(f.attrs["resume_count"]) == 1 and f.attrs["status"] == "running"

# Bad input: exit 2, one line, nothing created.
bad = work / "bad.toml"
bad.write_text(Path(smoke).read_text().replace("values = [4]", "values = [4, 0]"))
for args in ([work / "missing.toml"], [bad], [smoke, "--point", 4], [smoke, "--frobnicate"],
             [smoke, "--ranks-per-run", 0], []):
    p, _ = run(*args, "--output-dir", work / "never", expect=2)
    assert p.stderr.startswith("moe-study: ") and p.stderr.count("\n") == 1, p.stderr
    assert not (work / "never").exists()
p, _ = run(bad, expect=2)
assert "model.num_experts = 0" in p.stderr and "bad.toml:" in p.stderr, p.stderr
print("ok")
