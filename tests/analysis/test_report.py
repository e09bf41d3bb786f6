#!/usr/bin/env python3
"""analysis/report.py end to end on a tiny fake study.

    test_report.py MOE_TRAIN [WORK_DIR]

Trains 10 tiny runs (a second each: topk and MaskMoE and MoEC at 4 and 8 experts, a dense
model, 2 seeds where it matters), writes index.json by hand as moe-study would (plus one
pending point without a file), runs report.py, and checks: the figures exist; the table
values equal the HDF5 values read here with h5py; the group means and stds over seeds equal
numpy's; a directory without index.json is read from the files' /config; bad input exits 2
with one line on stderr.
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

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
REPORT = os.path.join(ROOT, "analysis", "report.py")
BASE = os.path.join(ROOT, "studies", "default.toml")

TINY = {"train.steps": 30, "train.eval_every": 10, "train.eval_batches": 4,
        "model.d_model": 32, "model.n_heads": 2, "model.seq_len": 32, "model.d_ff": 64,
        "train.batch_size": 4, "data.train_tokens": 100000, "data.val_tokens": 8192}

# (params swept by the fake study) per point; the pending one has no file.
POINTS = []
for e in (4, 8):
    for seed in (1, 2):
        POINTS.append({"router.type": "topk", "model.num_experts": e, "train.seed": seed})
for ratio, seeds in ((0.25, (1, 2)), (0.5, (1,))):
    for seed in seeds:
        POINTS.append({"router.type": "maskmoe", "model.num_experts": 8, "router.mask_ratio": ratio,
                       "router.visible_experts": 2, "train.seed": seed})
for cs in (2, 4):
    POINTS.append({"router.type": "moec", "model.num_experts": 8, "router.cluster_size": cs,
                   "train.seed": 1})
POINTS.append({"router.type": "topk", "model.num_experts": 1, "model.top_k": 1, "train.seed": 1})
PENDING = {"router.type": "hash", "model.num_experts": 8, "model.top_k": 1, "train.seed": 1}

FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print("FAIL:", what)


def point_id(params):
    return "_".join("%s-%s" % (k.split(".")[-1], v) for k, v in sorted(params.items()))


def train(moe_train, params, out):
    cmd = [moe_train, "--config", BASE]
    for k, v in list(TINY.items()) + list(params.items()):
        cmd += ["--set", "%s=%s" % (k, v)]
    cmd += ["--output", out]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        sys.exit("moe-train failed (%d): %s\n%s" % (r.returncode, " ".join(cmd), r.stdout[-2000:]))


def run_report(args):
    return subprocess.run([sys.executable, REPORT] + args, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def num(s):
    return math.nan if s == "" else float(s)


def close(a, b, rel=1e-12):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= rel * max(1.0, abs(a), abs(b))


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: test_report.py MOE_TRAIN [WORK_DIR]")
    moe_train = os.path.abspath(sys.argv[1])
    work = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else "analysis_work")
    study = os.path.join(work, "study")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(study)

    index = {"study": "fake", "points": []}
    truth = {}
    for params in POINTS:
        pid = point_id(params)
        path = os.path.join(study, pid + ".h5")
        train(moe_train, params, path)
        with h5py.File(path, "r") as f:
            truth[pid] = {"val_loss": float(f["eval/val_loss"][-1]),
                          "val_ppl": float(f["eval/val_ppl"][-1]),
                          "train_loss": float(f["train/loss"][-1]),
                          "loss": f["train/loss"][:],
                          "status": f.attrs["status"]}
        index["points"].append({"id": pid, "params": params, "file": pid + ".h5",
                                "status": "complete", "final_loss": truth[pid]["train_loss"],
                                "final_val_loss": truth[pid]["val_loss"]})
    pending = point_id(PENDING)
    index["points"].append({"id": pending, "params": PENDING, "file": pending + ".h5",
                            "status": "pending", "final_loss": None, "final_val_loss": None})
    with open(os.path.join(study, "index.json"), "w") as fh:
        json.dump(index, fh, indent=1)

    # The report.
    r = run_report([study])
    check(r.returncode == 0, "report.py exit 0 (got %d: %s)" % (r.returncode, r.stderr))
    out = os.path.join(study, "report")
    for name in ("report.md", "points.csv", "points.md", "groups.csv", "groups.md"):
        check(os.path.isfile(os.path.join(out, name)), "%s written" % name)
    for stem in ("upper_bound", "overfitting", "expert_load", "bucket_ppl", "fluctuation",
                 "mask_ratio", "cluster_size", "step_time"):
        p = os.path.join(out, stem + ".png")
        ok = os.path.isfile(p) and os.path.getsize(p) > 1000
        check(ok, "figure %s.png exists" % stem)
        if ok:
            with open(p, "rb") as fh:
                check(fh.read(8) == b"\x89PNG\r\n\x1a\n", "%s.png is a PNG" % stem)
    md = open(os.path.join(out, "report.md"), encoding="utf-8").read()
    check("![" in md and "upper_bound.png" in md and "groups.csv" in md,
          "report.md links figures and tables")

    # Per point: the table equals the HDF5 values.
    rows = {r["id"]: r for r in read_csv(os.path.join(out, "points.csv"))}
    check(len(rows) == len(POINTS) + 1, "points.csv has one row per point")
    for pid, t in truth.items():
        row = rows.get(pid)
        check(row is not None, "points.csv row %s" % pid)
        if row is None:
            continue
        check(row["status"] == t["status"] == "complete", "%s status complete" % pid)
        check(num(row["final_val_loss"]) == t["val_loss"],
              "%s final_val_loss %s == /eval/val_loss[-1] %r" % (pid, row["final_val_loss"],
                                                                 t["val_loss"]))
        check(num(row["final_val_ppl"]) == t["val_ppl"], "%s final_val_ppl" % pid)
        check(num(row["final_train_loss"]) == t["train_loss"], "%s final_train_loss" % pid)
        n = max(1, int(round(len(t["loss"]) * 0.1)))
        gap = t["val_loss"] - float(np.mean(t["loss"][-n:]))
        check(close(num(row["gap"]), gap), "%s gap" % pid)
        params = POINTS[[point_id(p) for p in POINTS].index(pid)]
        check(row["router.type"] == params["router.type"]
              and int(row["model.num_experts"]) == params["model.num_experts"]
              and int(row["train.seed"]) == params["train.seed"], "%s params columns" % pid)
    check(rows.get(pending, {}).get("status") == "pending"
          and rows.get(pending, {}).get("final_val_loss") == "", "pending point listed, empty")

    # Groups over seeds: membership consistent with the params, statistics equal numpy's.
    groups = read_csv(os.path.join(out, "groups.csv"))
    seen = []
    by_id = {point_id(p): p for p in POINTS}
    for g in groups:
        ids = g["ids"].split(";")
        seen += ids
        base = [{k: v for k, v in by_id[i].items() if k != "train.seed"} for i in ids]
        check(all(b == base[0] for b in base), "group %s: same params but the seed" % g["group"])
        check(int(g["n"]) == len(ids), "group %s: n" % g["group"])
        for col, key in (("final_val_loss", "val_loss"), ("final_val_ppl", "val_ppl")):
            vals = np.array([truth[i][key] for i in ids])
            check(close(num(g[col + "_mean"]), float(np.mean(vals))),
                  "group %s: %s mean %s == %r" % (g["group"], col, g[col + "_mean"],
                                                  float(np.mean(vals))))
            want_std = float(np.std(vals, ddof=1)) if len(vals) > 1 else math.nan
            check(close(num(g[col + "_std"]), want_std), "group %s: %s std" % (g["group"], col))
    check(sorted(seen) == sorted(truth), "every complete point in exactly one group")
    keys = [tuple(sorted((k, v) for k, v in by_id[g["ids"].split(";")[0]].items()
                         if k != "train.seed")) for g in groups]
    check(len(set(keys)) == len(keys), "groups are distinct")
    check(len(groups) == 7, "7 groups (got %d)" % len(groups))

    # No index.json: the topk files alone, parameters from /config.
    bare = os.path.join(work, "bare")
    os.makedirs(bare)
    topk = [point_id(p) for p in POINTS if p["router.type"] == "topk"
            and p["model.num_experts"] > 1]
    for pid in topk:
        shutil.copy(os.path.join(study, pid + ".h5"), bare)
    r = run_report([bare, "--out", os.path.join(work, "bare_report")])
    check(r.returncode == 0, "report.py without index.json exit 0 (%s)" % r.stderr)
    rows = read_csv(os.path.join(work, "bare_report", "points.csv"))
    check(sorted(r["id"] for r in rows) == sorted(topk), "bare: one row per *.h5")
    for row in rows:
        p = by_id[row["id"]]
        check(int(row["model.num_experts"]) == p["model.num_experts"]
              and int(row["train.seed"]) == p["train.seed"], "bare: params from /config")
        check(num(row["final_val_loss"]) == truth[row["id"]]["val_loss"], "bare: val loss")
    groups = read_csv(os.path.join(work, "bare_report", "groups.csv"))
    check([int(g["n"]) for g in groups] == [2, 2], "bare: two groups of two seeds")
    md = open(os.path.join(work, "bare_report", "report.md"), encoding="utf-8").read()
    check("Skipped" in md and "MaskMoE mask-ratio study: no complete maskmoe run" in md,
          "bare: skipped figures noted")
    check(not os.path.exists(os.path.join(work, "bare_report", "mask_ratio.png")),
          "bare: no mask-ratio figure")

    # Bad input: one line on stderr, exit 2.
    empty = os.path.join(work, "empty")
    os.makedirs(empty)
    broken = os.path.join(work, "broken")
    os.makedirs(broken)
    with open(os.path.join(broken, "index.json"), "w") as fh:
        fh.write("{not json")
    for what, d in (("missing dir", os.path.join(work, "no_such_dir")), ("no run files", empty),
                    ("bad index.json", broken)):
        r = run_report([d])
        check(r.returncode == 2, "%s: exit 2 (got %d)" % (what, r.returncode))
        check(len(r.stderr.strip().splitlines()) == 1 and r.stdout == "",
              "%s: one line on stderr (got %r)" % (what, r.stderr))

    if FAILURES:
        print("%d check(s) failed" % len(FAILURES))
        return 1
    print("analysis_report: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
