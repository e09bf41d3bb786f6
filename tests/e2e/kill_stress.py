#!/usr/bin/env python3
"""Kill stress: SIGKILL moe-train and moe-study at random instants, continue each time, and
check that every finished run equals its uninterrupted reference bit for bit.

    kill_stress.py BIN_DIR WORK_DIR [--seed S] [--train-kills N] [--study-kills M]

moe-train: a run is started, killed after a random delay (seeded), continued with --resume
whenever its checkpoint exists (else started over), killed again, ... until an attempt
finishes; then every dataset under /train, /eval, /routing and /trace (timings aside) must
equal the reference run's, and a new sequence starts, until N kills. moe-study: the same with
a three-point study rerun after each kill (it resumes its points itself), compared point by
point, until M kills. The delays are drawn from one seeded generator, so the sequence of kill
times is repeatable (where they land in the program depends on the machine's speed).
"""
import argparse
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("bin_dir")
ap.add_argument("work")
ap.add_argument("--seed", type=int, default=16)
ap.add_argument("--train-kills", type=int, default=30)
ap.add_argument("--study-kills", type=int, default=20)
args = ap.parse_args()
BIN, WORK = Path(args.bin_dir).resolve(), Path(args.work).resolve()
shutil.rmtree(WORK, ignore_errors=True)
WORK.mkdir(parents=True)
rng = random.Random(args.seed)

TRAIN_ARGS = ["--set", "model.vocab_size=256", "--set", "model.d_model=32",
              "--set", "model.n_heads=2", "--set", "model.seq_len=32", "--set", "model.n_layers=2",
              "--set", "model.d_ff=64", "--set", "model.num_experts=4", "--set", "model.top_k=2",
              "--set", "train.batch_size=4", "--set", "data.train_tokens=20000",
              "--set", "data.val_tokens=4096", "--set", "train.eval_batches=2",
              "--set", "train.warmup_steps=5", "--set", "train.steps=80",
              "--set", "train.eval_every=10", "--set", "output.checkpoint_every=7",
              "--set", "output.trace_every=9"]
STUDY_TOML = """
[study]
name = "stress"
[base.model]
vocab_size = 256
d_model = 32
n_layers = 1
n_heads = 2
d_ff = 64
seq_len = 32
num_experts = 4
top_k = 1
[base.train]
steps = 40
batch_size = 4
warmup_steps = 5
eval_every = 10
eval_batches = 2
[base.data]
train_tokens = 20000
val_tokens = 4096
[base.router]
cluster_loss_weight = 0.01
expert_dropout = 0.25
[base.output]
checkpoint_every = 6
[[zip]]
keys = ["router.type", "router.cluster_size"]
values = [["topk", 0], ["hash", 0], ["moec", 2]]
[[exclude]]
where = { "router.type" = ["topk", "hash"] }
drop = ["router.cluster_size"]
"""
IGNORED = ("train/tokens_per_s", "train/time/")


def datasets(path):
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and not name.startswith(IGNORED):
                out[name] = obj[()]
        for g in ("train", "eval", "routing", "trace"):
            if g in f:
                f[g].visititems(lambda n, o, g=g: visit(f"{g}/{n}", o))
        status = f.attrs["status"]
    return status, out


def assert_same(ref, path, what):
    left = list(path.parent.glob(path.name + "*.tmp.*"))
    assert not left, (what, "temporary files left behind", left)
    status, got = datasets(path)
    assert status == "complete", (what, status)
    assert sorted(got) == sorted(ref), (what, sorted(set(got) ^ set(ref)))
    for k in ref:
        a, b = np.asarray(ref[k]), np.asarray(got[k])
        assert a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes(), (what, k)


def run_killed(cmd, delay):
    """Runs cmd; SIGKILL after `delay` seconds. Returns (killed, returncode, stderr)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            cwd=WORK)
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True, proc.returncode, ""
    return False, proc.returncode, proc.stderr.read()


def reference_duration(cmd):
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=WORK)
    assert p.returncode == 0, p.stderr
    return time.time() - t0


# --- moe-train ---------------------------------------------------------------------------
train_bin = str(BIN / "moe-train")
ref_path = WORK / "train_ref.h5"
span = reference_duration([train_bin, *TRAIN_ARGS, "--output", str(ref_path)])
_, ref = datasets(ref_path)
kills = sequences = resumes = 0
while kills < args.train_kills:
    out = WORK / f"train_{sequences}.h5"
    attempts = 0
    while True:
        if out.exists() and datasets(out)[0] == "complete":
            break  # killed after the file was complete (exiting): nothing left to resume
        resume = Path(str(out) + ".ckpt").exists()
        cmd = [train_bin, *TRAIN_ARGS, "--output", str(out), "--resume" if resume else "--overwrite"]
        # Delays over the whole run, start-up included; after enough kills, let it finish.
        delay = rng.uniform(0.0, 1.2 * span) if kills < args.train_kills else 600
        killed, rc, err = run_killed(cmd, delay)
        attempts += 1
        resumes += resume
        if killed:
            kills += 1
            continue
        assert rc == 0, (cmd, rc, err)
        break
    assert_same(ref, out, f"moe-train sequence {sequences} ({attempts} attempts)")
    sequences += 1
print(f"moe-train: {kills} kills in {sequences} runs, {resumes} resumes, every run equal to the "
      f"uninterrupted one (reference {span:.1f} s)")

# --- moe-study ---------------------------------------------------------------------------
study_bin = str(BIN / "moe-study")
study_file = WORK / "stress.toml"
study_file.write_text(STUDY_TOML)
ref_dir = WORK / "study_ref"
span = reference_duration([study_bin, str(study_file), "--output-dir", str(ref_dir)])
refs = {p.name: datasets(p)[1] for p in sorted(ref_dir.glob("*.h5"))}
assert len(refs) == 3
study_kills = runs = 0
while study_kills < args.study_kills:
    out = WORK / f"study_{runs}"
    attempts = 0
    while True:
        delay = rng.uniform(0.0, 1.1 * span) if study_kills < args.study_kills else 600
        killed, rc, err = run_killed([study_bin, str(study_file), "--output-dir", str(out)], delay)
        attempts += 1
        if killed:
            study_kills += 1
            continue
        assert rc == 0, (rc, err)
        break
    for name, ref in refs.items():
        assert_same(ref, out / name, f"moe-study run {runs} point {name}")
    runs += 1
print(f"moe-study: {study_kills} kills in {runs} studies, every point equal to the uninterrupted "
      f"study's (reference {span:.1f} s)")
print(f"ok: {kills + study_kills} kills (seed {args.seed})")
