#!/usr/bin/env python3
"""MoEC's cluster loss is calibrated against the balance loss at step 0 of the scaling study:
for the study's MoEC points at 8 and 64 experts, the weighted cluster loss of the first step
(router.cluster_loss_weight x /train/cluster_loss[0]) is within a factor of 10 of the weighted
balance loss (router.aux_loss_weight x /train/balance_loss[0]). Before the recalibration the
cluster loss read batch sums and was about 10^5 times larger.
usage: moec_calibration.py MOE_STUDY STUDIES_DIR WORKDIR
"""
import re
import subprocess
import sys
from pathlib import Path

import h5py

STUDY, STUDIES, WORK = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
WORK.mkdir(parents=True, exist_ok=True)
TOML = STUDIES / "scaling_upper_bound.toml"
OUT = WORK / "moec_calibration"

listing = subprocess.run([STUDY, str(TOML), "--list"], capture_output=True, text=True, check=True)
points = {}
for line in listing.stdout.splitlines():
    index, point_id, *params = line.split()
    kv = dict(p.split("=", 1) for p in params)
    if kv.get("router.type") == "moec" and kv.get("train.seed") == "1" \
            and kv.get("model.num_experts") in ("8", "64"):
        points[int(index)] = point_id
assert len(points) == 2, listing.stdout


def weight(config, key):
    m = re.search(r"^%s = ([0-9.eE+-]+)" % key, config, re.M)
    assert m, key
    return float(m.group(1))


for index, point_id in points.items():
    # The working directory holds the prepared KJV data (data/cache), built on first use.
    proc = subprocess.run([STUDY, str(TOML), "--point", str(index), "--stop-after", "1",
                           "--output-dir", str(OUT)], capture_output=True, text=True, cwd=WORK)
    assert proc.returncode == 0, proc.stderr
    with h5py.File(OUT / f"{point_id}.h5", "r") as f:
        config = f["config"][()].decode()
        cluster = weight(config, "cluster_loss_weight") * f["train/cluster_loss"][0]
        balance = weight(config, "aux_loss_weight") * f["train/balance_loss"][0]
    ratio = cluster / balance
    print(f"{point_id}: weighted cluster {cluster:.3g}, weighted balance {balance:.3g}, "
          f"ratio {ratio:.3g}")
    assert 0.1 <= ratio <= 10, (point_id, ratio)
