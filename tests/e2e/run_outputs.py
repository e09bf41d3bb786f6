#!/usr/bin/env python3
"""Run outputs end to end (issue 5): the run file's schema read back with h5py, exact resume
after --stop-after, after SIGTERM and after SIGKILL, a killed run's file stays readable, a failed
run records why, frequency buckets cover the vocabulary, and routing fluctuation is zero for
hash routing and for MaskMoE's infrequent tokens.
usage: run_outputs.py MOE_TRAIN WORKDIR
"""
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

TRAIN, WORK = sys.argv[1], Path(sys.argv[2])
WORK.mkdir(parents=True, exist_ok=True)
TINY = ["--set", "model.vocab_size=256", "--set", "model.d_model=32", "--set", "model.n_heads=2",
        "--set", "model.seq_len=32", "--set", "model.n_layers=2", "--set", "model.d_ff=64",
        "--set", "model.num_experts=4", "--set", "model.top_k=2", "--set", "train.batch_size=4",
        "--set", "data.train_tokens=50000", "--set", "data.val_tokens=4096",
        "--set", "train.eval_batches=4", "--set", "train.warmup_steps=5"]


def train(out, *extra, check=True):
    for p in (out, Path(str(out) + ".ckpt")):
        if p.exists() and "--resume" not in extra:
            p.unlink()
    proc = subprocess.run([TRAIN, *TINY, *extra, "--output", str(out)], capture_output=True,
                          text=True)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def series(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][:] for k in ("train/step", "train/loss", "train/grad_norm",
                                     "eval/step", "eval/val_loss", "eval/bucket_ppl")}


def same_sequence(a, b, what):
    for k in a:
        assert a[k].shape == b[k].shape, f"{what}: {k} shape {a[k].shape} vs {b[k].shape}"
        assert np.array_equal(a[k], b[k], equal_nan=True), f"{what}: {k} differs"


# --- the uninterrupted reference run, and the schema ----------------------------------------
STEPS = 60
base = ["--set", f"train.steps={STEPS}", "--set", "train.eval_every=10",
        "--set", "output.trace_every=20"]
ref_path = WORK / "ref.h5"
train(ref_path, *base)
ref = series(ref_path)
with h5py.File(ref_path, "r") as f:
    assert f.attrs["status"] == "complete"
    for a in ("suite_version", "git_commit", "kokkos_version", "kokkos_backend", "mpi_ranks",
              "device", "seed", "start_time", "end_time", "final_loss", "final_val_loss"):
        assert a in f.attrs, a
    assert "num_experts = 4" in f["config"][()].decode()
    n = STEPS
    for name in ("loss", "aux_loss", "balance_loss", "z_loss", "cluster_loss", "lr",
                 "grad_norm", "tokens_per_s"):
        assert f[f"train/{name}"].shape == (n,), name
    # Clipping fired exactly on the steps whose norm exceeded train.grad_clip (default 1.0).
    clipped = f["train/clipped"][:]
    assert clipped.shape == (n,)
    assert np.array_equal(clipped, (f["train/grad_norm"][:] > 1.0).astype(clipped.dtype))
    phases = ("embedding", "attention_fwd", "attention_bwd", "router", "dispatch", "experts_fwd",
              "experts_bwd", "combine", "loss", "rest", "optimizer")
    times = np.stack([f[f"train/time/{p}"][:] for p in phases])
    assert np.all(times >= 0) and np.all(times.sum(axis=0) > 0)
    for layer in (0, 1):
        g = f[f"routing/layer_{layer}"]
        assert g["tokens_per_expert"].shape == (n, 4)
        assert np.all(g["tokens_per_expert"][:].sum(axis=1) == 4 * 32 * 2)
        for name in ("dropped", "max_over_mean_load", "router_entropy"):
            assert g[name].shape == (n,), name
        assert np.all(g["max_over_mean_load"][:] >= 1.0)
        ent = g["router_entropy"][:]
        assert np.all(ent >= 0) and np.all(ent <= math.log(4) + 1e-9)
        fl = f[f"eval/fluctuation/layer_{layer}"][:]
        assert fl.shape == (STEPS // 10, 3) and np.all(np.isnan(fl[0]))
        assert np.all((fl[1:, 0] >= 0) & (fl[1:, 0] <= 1))
        # traces: every 20th step and every evaluation
        assert f[f"trace/train/layer_{layer}/experts"].shape == (STEPS // 20, 4 * 32 * 2)
        assert f[f"trace/eval/layer_{layer}/gates"].shape == (STEPS // 10, 4 * 32 * 2)
    assert f["trace/train/tokens"].shape == (STEPS // 20, 4 * 32)
    assert list(f["trace/train/step"][:]) == [19, 39, 59]
    # Frequency buckets cover the vocabulary exactly once.
    assert f["eval/bucket_types"][:].sum() == 256
    assert f["eval/bucket_ppl"].shape == (STEPS // 10, 5)
    val = f["eval/val_loss"][:]
    assert np.allclose(f["eval/val_ppl"][:], np.exp(val))
print("schema ok")

# --- exact resume after --stop-after ----------------------------------------------------------
p = WORK / "stop_after.h5"
proc = train(p, *base, "--stop-after", "25")
with h5py.File(p, "r") as f:
    assert f.attrs["status"] == "running" and f["train/loss"].shape == (25,)
assert Path(str(p) + ".ckpt").exists()
proc = train(p, *base, "--stop-after", "17", "--resume")   # a second piece: steps 25..41
proc = train(p, *base, "--resume")
same_sequence(ref, series(p), "--stop-after")
with h5py.File(p, "r") as f:
    assert f.attrs["status"] == "complete" and f.attrs["resume_count"] == 2
print("resume after --stop-after ok")


# --- SIGTERM and SIGKILL ----------------------------------------------------------------------
def run_and_signal(path, sig, extra, min_steps):
    """Starts a long run and sends `sig` once its progress lines show min_steps steps done (the
    run file itself is locked by HDF5 while the writer has it open)."""
    for q in (path, Path(str(path) + ".ckpt")):
        if q.exists():
            q.unlink()
    proc = subprocess.Popen([TRAIN, *TINY, *extra, "--output", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("step ") and int(line.split()[1].split("/")[0]) >= min_steps:
            break
    assert proc.poll() is None, "run ended before the signal"
    proc.send_signal(sig)
    proc.stdout.read()
    proc.wait(timeout=120)
    return proc


LONG = 400
long_base = ["--set", f"train.steps={LONG}", "--set", "train.eval_every=50"]
long_ref = WORK / "long_ref.h5"
train(long_ref, *long_base)
long_series = series(long_ref)

p = WORK / "sigterm.h5"
proc = run_and_signal(p, signal.SIGTERM, long_base, 30)
assert proc.returncode == 0, proc.stderr
with h5py.File(p, "r") as f:
    assert f.attrs["status"] == "running"
    done = f["train/loss"].shape[0]
    assert 30 <= done < LONG
train(p, *long_base, "--resume")
same_sequence(long_series, series(p), "SIGTERM")
print(f"resume after SIGTERM at step {done} ok")

p = WORK / "sigkill.h5"
proc = run_and_signal(p, signal.SIGKILL, long_base + ["--set", "output.checkpoint_every=20"], 45)
assert proc.returncode == -signal.SIGKILL
with h5py.File(p, "r") as f:  # a killed run's file stays readable
    assert f.attrs["status"] == "running"
    killed_at = f["train/loss"].shape[0]
    ck = int(f.attrs["checkpoint_step"])
    assert killed_at >= 20 and ck >= 20
    assert np.array_equal(f["train/loss"][:killed_at], long_series["train/loss"][:killed_at])
train(p, *long_base, "--set", "output.checkpoint_every=20", "--resume")
same_sequence(long_series, series(p), "SIGKILL")
print(f"resume after SIGKILL (file had {killed_at} steps, checkpoint {ck}) ok")

# --- resume refusals --------------------------------------------------------------------------
proc = train(p, *long_base, "--resume", check=False)
assert proc.returncode == 2 and "already complete" in proc.stderr, proc.stderr
q = WORK / "shape.h5"
train(q, *base, "--stop-after", "5")
proc = train(q, *base, "--set", "model.d_ff=96", "--resume", check=False)
assert proc.returncode == 2 and "model.d_ff" in proc.stderr and proc.stderr.count("\n") == 1
print("resume refusals ok")

# --- a failed run keeps its file with the reason ------------------------------------------
q = WORK / "nan.h5"
proc = train(q, "--set", "train.steps=50", "--set", "train.lr=1e12", "--set",
             "train.grad_clip=0", "--set", "train.warmup_steps=0", check=False)
assert proc.returncode == 1, (proc.returncode, proc.stderr)
with h5py.File(q, "r") as f:
    assert f.attrs["status"] == "failed" and "non-finite" in f.attrs["error"]
    assert f["train/loss"].shape[0] >= 1
print("failed run ok")

# --- routing fluctuation: zero for fixed routing ------------------------------------------
q = WORK / "hash.h5"
train(q, "--set", "train.steps=40", "--set", "train.eval_every=10", "--set",
      "router.type=hash", "--set", "model.top_k=1")
with h5py.File(q, "r") as f:
    for layer in (0, 1):
        fl = f[f"eval/fluctuation/layer_{layer}"][:]
        assert np.all(fl[1:, 0] == 0), fl
q = WORK / "maskmoe.h5"
train(q, "--set", "train.steps=40", "--set", "train.eval_every=10", "--set",
      "router.type=maskmoe", "--set", "router.mask_ratio=0.5", "--set",
      "router.visible_experts=2", "--set", "model.top_k=1")
with h5py.File(q, "r") as f:
    for layer in (0, 1):
        fl = f[f"eval/fluctuation/layer_{layer}"][:]
        assert np.all(fl[1:, 2] == 0), fl  # infrequent tokens: one visible expert
        assert f.attrs["status"] == "complete"
    # What "infrequent" covered, next to its perplexity: mask_by = "mass" (the default) keeps
    # the infrequent tokens' share of the training tokens within mask_ratio = 0.5.
    ev = f["eval"]
    mass, types = ev.attrs["infrequent_train_mass"], ev.attrs["infrequent_types"]
    assert 0 < mass <= 0.5 and 0 < types < 256, (mass, types)
    share = ev["infrequent_val_share"][:]
    assert share.shape == ev["ppl_infrequent"].shape and np.all((share > 0) & (share < 1)), share
print("fluctuation ok")
print("ok")
