#!/usr/bin/env python3
"""End to end: moe-study on 2 MPI ranks splits COMM_WORLD into two groups of one rank that
share the smoke study's points. Checks that both groups ran points, every point is complete
exactly once (index and run files agree), the final losses equal a one-rank run's (each point
is trained by one rank either way), and that 2 ranks with ranks_per_run = 3 is refused (exit 2).
usage: study_mpi.py MOE_STUDY STUDIES_DIR WORKDIR (MPI launcher: tests/e2e/mpi_launch.py)
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
from mpi_launch import mpi_command

study_bin, studies = os.path.abspath(sys.argv[1]), Path(sys.argv[2]).resolve()
work = Path(sys.argv[3]).resolve()
work = work / "study_mpi"
shutil.rmtree(work, ignore_errors=True)
work.mkdir(parents=True)
smoke = str(studies / "smoke.toml")


def run(cmd, expect=0):
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=work, timeout=600)
    print("$", " ".join(map(str, cmd)), f"(rc {p.returncode})")
    print(p.stdout[-3000:], p.stderr[-2000:], sep="")
    assert p.returncode == expect, (p.returncode, p.stderr)
    return p


one, two = work / "one", work / "two"
run([study_bin, smoke, "--output-dir", one])
p = run(mpi_command(2, study_bin, smoke, "--output-dir", two))
for g in ("group 0", "group 1"):
    assert f"moe-study smoke {g}: " in p.stdout and p.stdout.count(f"{g}: [") >= 2, p.stdout
assert p.stdout.count(" starts ") == 4 and p.stdout.count(" complete in ") == 4, p.stdout
assert p.stdout.count("4/4 complete") == 1  # the summary, from rank 0 only

ref = {q["id"]: q for q in json.loads((one / "index.json").read_text())["points"]}
idx = json.loads((two / "index.json").read_text())
ids = [q["id"] for q in idx["points"]]
assert ids == list(ref) and len(set(ids)) == 4, ids
for q in idx["points"]:
    assert q["status"] == "complete" and q["claimed_by"] is None, q
    assert q["params"] == ref[q["id"]]["params"]
    with h5py.File(two / q["file"], "r") as f:
        assert f.attrs["status"] == "complete"
        assert int(f.attrs["mpi_ranks"]) == 1
        assert float(f.attrs["final_loss"]) == q["final_loss"]
    assert q["final_loss"] == ref[q["id"]]["final_loss"], (q["id"], q["final_loss"])
assert not list(two.glob("*.tmp.*")), "temporary index files left"

# A rerun under MPI skips everything.
p = run(mpi_command(2, study_bin, smoke, "--output-dir", two))
assert " starts " not in p.stdout and "4/4 complete" in p.stdout

# Ranks that do not split into groups: one line from rank 0, exit 2.
p = run(mpi_command(2, study_bin, smoke, "--output-dir", work / "never", "--ranks-per-run", "3"),
        expect=2)
assert p.stderr.count("moe-study: ") == 1 and "ranks_per_run = 3" in p.stderr, p.stderr
assert not (work / "never").exists()
print("ok")
