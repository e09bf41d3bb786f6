#!/usr/bin/env python3
"""report.py's statistics over seeds, end to end on real run files.

    test_scaling_report.py MOE_TRAIN [WORK_DIR]

Trains 21 tiny runs on the synthetic corpus (dense and topk at 2 and 4 experts at two data
sizes, MoEC at 4 experts on the small one, 3 seeds each, whole validation and test splits),
writes index.json as moe-study would, runs report.py and checks its stats_*.csv against values
computed here from the HDF5 files with numpy and the t distribution (not with the suite's
moe_analysis.stats): means and 95% intervals, paired per-seed differences against the dense
model and against topk, the peak chosen on validation, the curvature interaction. Also checks
that every run scored exactly the validation and test tokens its splits hold.
"""

import csv
import json
import math
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
from scipy.stats import t as student_t

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
REPORT = os.path.join(ROOT, "analysis", "report.py")
BASE = os.path.join(ROOT, "studies", "default.toml")
S = 32
TINY = {"train.steps": 24, "train.eval_every": 12, "train.eval_batches": 0,
        "model.d_model": 32, "model.n_heads": 2, "model.seq_len": S, "model.d_ff": 64,
        "model.top_k": 1, "train.batch_size": 4, "data.val_tokens": 3000,
        "data.test_tokens": 2000, "router.capacity_factor": 0}
SIZES = (5000, 50000)
SEEDS = (1, 2, 3)

POINTS = []
for size in SIZES:
    for e in (1, 2, 4):
        for seed in SEEDS:
            POINTS.append({"data.train_tokens": size, "model.num_experts": e, "train.seed": seed,
                           "router.type": "topk"})
for seed in SEEDS:
    POINTS.append({"data.train_tokens": SIZES[0], "model.num_experts": 4, "train.seed": seed,
                   "router.type": "moec", "router.cluster_size": 2})

FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print("FAIL:", what)


def close(a, b, tol=1e-9):
    return abs(float(a) - float(b)) <= tol * max(1.0, abs(float(a)), abs(float(b)))


def ci(values):
    """Mean and the 95% Student-t interval, from the textbook formula."""
    v = np.asarray(values, dtype=float)
    half = student_t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return v.mean(), v.mean() - half, v.mean() + half


def router(p):
    return "dense" if p["model.num_experts"] == 1 else p["router.type"]


def main():
    moe_train = os.path.abspath(sys.argv[1])
    work = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else "scaling_report_work")
    study = os.path.join(work, "study")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(study)
    index = {"study": "scaling", "points": []}
    runs = []
    for i, params in enumerate(POINTS):
        pid = "p%02d" % i
        path = os.path.join(study, pid + ".h5")
        cmd = [moe_train, "--config", BASE, "--output", path]
        for k, v in list(TINY.items()) + list(params.items()):
            cmd += ["--set", "%s=%s" % (k, v)]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            sys.exit("moe-train failed: %s\n%s" % (" ".join(cmd), r.stdout[-2000:]))
        with h5py.File(path, "r") as f:
            run = dict(params, router=router(params), val=float(f["eval/val_loss"][-1]),
                       test=float(f["test/loss"][0]))
            # Every window of the whole validation and test splits was scored.
            check(int(f["eval/tokens"][-1]) == (3000 - 1) // S * S, "%s eval tokens" % pid)
            check(int(f["test/tokens"][0]) == (2000 - 1) // S * S, "%s test tokens" % pid)
            check(int(f.attrs["data_val_tokens"]) == 3000, "%s val split size" % pid)
        runs.append(run)
        index["points"].append({"id": pid, "params": params, "file": pid + ".h5",
                                "status": "complete"})
    with open(os.path.join(study, "index.json"), "w") as fh:
        json.dump(index, fh)

    r = subprocess.run([sys.executable, REPORT, study], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    check(r.returncode == 0, "report.py exit 0: %s" % r.stderr)
    out = os.path.join(study, "report")
    md = open(os.path.join(out, "report.md"), encoding="utf-8").read()
    check("Statistics over seeds (95% intervals)" in md, "report.md has the statistics section")
    check("scaling_ci.png" in md and os.path.getsize(os.path.join(out, "scaling_ci.png")) > 1000,
          "figure with 95% intervals")
    check("validation %d, test %d" % ((3000 - 1) // S * S, (2000 - 1) // S * S) in md,
          "report.md states the evaluated tokens")

    def rows(name):
        with open(os.path.join(out, "stats_%s.csv" % name), newline="") as fh:
            return list(csv.DictReader(fh))

    def select(**kw):
        return [x for x in runs if all(x[k] == v for k, v in kw.items())]

    # Means and intervals per point.
    pts = rows("points")
    check(len(pts) == 7, "7 groups (got %d)" % len(pts))
    for row in pts:
        g = select(router=row["router"], **{"data.train_tokens": int(row["train_tokens"]),
                                             "model.num_experts": int(row["experts"])})
        mean, lo, hi = ci([x["test"] for x in g])
        check(int(row["n"]) == 3 and close(row["test_loss_mean"], mean)
              and close(row["test_loss_lo"], lo) and close(row["test_loss_hi"], hi),
              "test loss CI of %s" % row)

    # Paired differences against the dense model and against topk.
    def paired(name, ref_of):
        for row in rows(name):
            size, e = int(row["train_tokens"]), int(row["experts"])
            d = []
            for seed in SEEDS:
                (a,) = select(router=row["router"], **{"data.train_tokens": size,
                                                       "model.num_experts": e,
                                                       "train.seed": seed})
                (b,) = select(**ref_of(size, e, seed))
                d.append(a["test"] - b["test"])
            mean, lo, hi = ci(d)
            check(close(row["mean"], mean) and close(row["lo"], lo) and close(row["hi"], hi),
                  "%s paired difference %s" % (name, row))
    paired("vs_dense", lambda size, e, seed: {"router": "dense", "data.train_tokens": size,
                                              "train.seed": seed})
    paired("vs_topk", lambda size, e, seed: {"router": "topk", "data.train_tokens": size,
                                             "model.num_experts": e, "train.seed": seed})
    check(len(rows("vs_dense")) == 5 and len(rows("vs_topk")) == 1, "paired table sizes")

    # Each router from its fewer to its more experts (the counts all routers of a size share).
    own = rows("own_scaling")
    check(len(own) == 1 and own[0]["router"] == "topk" and int(own[0]["train_tokens"]) == SIZES[1],
          "own-scaling rows: topk on the large data only (got %s)" % own)
    for row in own:
        d = [select(router="topk", **{"data.train_tokens": SIZES[1], "model.num_experts": 4,
                                      "train.seed": s})[0]["test"]
             - select(router="topk", **{"data.train_tokens": SIZES[1], "model.num_experts": 2,
                                        "train.seed": s})[0]["test"] for s in SEEDS]
        mean, lo, hi = ci(d)
        check(close(row["mean"], mean) and close(row["lo"], lo) and close(row["hi"], hi),
              "own scaling %s" % row)

    # The peak: the expert count with the lowest mean validation loss (dense and topk).
    for row in rows("peaks"):
        size = int(row["train_tokens"])
        means = {e: np.mean([x["val"] for x in select(**{"data.train_tokens": size,
                                                        "model.num_experts": e})
                             if x["router"] in ("dense", "topk")]) for e in (1, 2, 4)}
        check(float(row["peak_experts"]) == min(means, key=means.get), "peak of %d" % size)

    # Curvature interaction: per seed, the quadratic coefficient in log2(experts), small - large.
    def curv(size, seed):
        es = (1, 2, 4)
        ys = [select(**{"data.train_tokens": size, "model.num_experts": e, "train.seed": seed,
                        "router.type": "topk"})[0]["test"] for e in es]
        return np.polyfit(np.log2(es), ys, 2)[0]
    (inter,) = rows("interaction")
    mean, lo, hi = ci([curv(SIZES[0], s) - curv(SIZES[1], s) for s in SEEDS])
    check(close(inter["difference_mean"], mean, 1e-7) and close(inter["difference_lo"], lo, 1e-7)
          and close(inter["difference_hi"], hi, 1e-7), "curvature interaction %s" % inter)

    if FAILURES:
        print("%d failures" % len(FAILURES))
        return 1
    print("ok: %d runs, statistics equal the independent computation" % len(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
