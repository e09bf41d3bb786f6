#!/usr/bin/env python3
"""Distributed training (issue 6): at 1, 2 and 4 MPI ranks (oversubscribed here), with expert
parallelism over all ranks and over groups of 2 with replicas, every router trains the same
model as on one rank: the loss sequence within 1e-5 relative and the per-step tokens-per-expert
and dropped counts identical. Configurations the ranks cannot divide are refused on every rank
with one line, exit 2, no file.
usage: mpi_equivalence.py MOE_TRAIN WORKDIR
"""
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
from mpi_launch import mpi_command, mpmd_command

TRAIN, WORK = sys.argv[1], Path(sys.argv[2])
WORK.mkdir(parents=True, exist_ok=True)
ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1")
TINY = ["--set", "model.vocab_size=256", "--set", "model.d_model=32", "--set", "model.n_heads=2",
        "--set", "model.seq_len=32", "--set", "model.n_layers=2", "--set", "model.d_ff=64",
        "--set", "model.num_experts=4", "--set", "train.batch_size=8", "--set", "train.steps=8",
        "--set", "train.eval_every=4", "--set", "data.train_tokens=50000",
        "--set", "data.val_tokens=4096", "--set", "train.eval_batches=2"]
ROUTERS = {
    "dense": ["--set", "model.num_experts=1", "--set", "model.top_k=1"],
    "topk_capacity": ["--set", "model.top_k=2", "--set", "router.capacity_factor=1.0",
                      "--set", "router.normalize_gates=true"],
    "hash": ["--set", "router.type=hash", "--set", "model.top_k=1",
             "--set", "router.capacity_factor=1.0"],
    "maskmoe": ["--set", "router.type=maskmoe", "--set", "router.mask_ratio=0.5",
                "--set", "router.visible_experts=2", "--set", "model.top_k=2"],
    "moec": ["--set", "router.type=moec", "--set", "router.cluster_size=2", "--set", "model.top_k=1",
             "--set", "router.cluster_loss_weight=0.01", "--set", "router.expert_dropout=0.25",
             "--set", "router.dropout_interval=3", "--set", "router.capacity_factor=1.5"],
    "expert_choice": ["--set", "router.type=expert_choice", "--set", "router.capacity_factor=2"],
}
LAYOUTS = [(2, []), (4, []), (4, ["--set", "parallel.expert_parallel=2"])]


def run(ranks, args, out):
    if out.exists():
        out.unlink()
    cmd = [TRAIN, *args, "--output", str(out), "--overwrite"]  # a rerun replaces its files
    if ranks > 1:
        cmd = mpi_command(ranks, *cmd)
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)


def suite_lines(stderr):
    """The non-empty stderr lines that are the suite's own: Kokkos' start-up warnings (OpenMP
    builds warn of oversubscription: a "Kokkos::" line and indented detail lines) are not."""
    return [l for l in stderr.splitlines()
            if l.strip() and not l.startswith("Kokkos::") and not l.startswith("    ")]


def series(path):
    with h5py.File(path, "r") as f:
        assert f.attrs["status"] == "complete"
        out = {"loss": f["train/loss"][:], "val": f["eval/val_loss"][:]}
        for layer in f.get("routing", {}):
            out[layer + "/tpe"] = f[f"routing/{layer}/tokens_per_expert"][:]
            out[layer + "/dropped"] = f[f"routing/{layer}/dropped"][:]
        return out


for name, extra in ROUTERS.items():
    ref_path = WORK / f"{name}_1.h5"
    proc = run(1, TINY + extra, ref_path)
    assert proc.returncode == 0, (name, proc.stderr)
    ref = series(ref_path)
    for ranks, layout in LAYOUTS:
        out = WORK / f"{name}_{ranks}_{len(layout)}.h5"
        proc = run(ranks, TINY + extra + layout, out)
        assert proc.returncode == 0, (name, ranks, layout, proc.stderr)
        got = series(out)
        rel = np.max(np.abs(got["loss"] / ref["loss"] - 1))
        assert rel < 1e-5, f"{name} at {ranks} ranks {layout}: loss differs by {rel:.2e}"
        assert np.max(np.abs(got["val"] / ref["val"] - 1)) < 1e-5, name
        for key in ref:
            if key.endswith("/tpe") or key.endswith("/dropped"):
                assert np.array_equal(got[key], ref[key]), f"{name} {ranks} {layout}: {key}"
        with h5py.File(out, "r") as f:
            assert f.attrs["mpi_ranks"] == ranks
        print(f"{name:14s} {ranks} ranks {' '.join(layout[1::2]) or 'ep=all':28s} "
              f"max rel loss diff {rel:.1e}  ok")
    if name in ("topk_capacity", "hash", "moec"):
        assert ref["layer_0/dropped"].sum() > 0, f"{name}: the case must drop tokens"

# Refusals: one line on stderr, exit 2 on every rank, no file, no hang.
cases = [
    (4, ["--set", "train.batch_size=6"], "train.batch_size"),
    (4, ["--set", "model.num_experts=6", "--set", "model.top_k=2"], "model.num_experts"),
    (4, ["--set", "parallel.expert_parallel=3"], "parallel.expert_parallel"),
]
for ranks, args, key in cases:
    out = WORK / "refused.h5"
    proc = run(ranks, TINY + args, out)
    lines = suite_lines(proc.stderr)
    assert proc.returncode == 2, (key, proc.returncode, proc.stderr)
    assert len(lines) == 1 and key in lines[0], (key, proc.stderr)
    assert not out.exists(), key
    print(f"refused: {lines[0]}")

# A failure on one rank only: rank 1 cannot read its data (an MPMD launch hands only rank 1 the
# missing file). Every rank must refuse with one line naming rank 1 and the key, exit 2, with
# no run file, promptly (before this change rank 0 trained on and waited forever for rank 1).
corpus = WORK / "corpus.txt"
corpus.write_text("In the beginning was the word.\nAnd the word was with the text.\n" * 200)
out = WORK / "one_rank_fails.h5"
if out.exists():
    out.unlink()
common = TINY + ["--set", "data.source=text", "--set", "data.tokenizer=bpe",
                 "--set", f"data.cache_dir={WORK / 'cache'}", "--output", str(out)]
cmd = mpmd_command((1, TRAIN, [*common, "--set", f"data.path={corpus}"]),
                   (1, TRAIN, [*common, "--set", f"data.path={WORK / 'missing.txt'}"]))
proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=120)
lines = suite_lines(proc.stderr)
assert proc.returncode == 2, (proc.returncode, proc.stderr)
assert len(lines) == 1 and "rank 1" in lines[0] and "data.path" in lines[0], proc.stderr
assert not out.exists()
print(f"one rank's data unreadable: {lines[0]}")

# A NaN during training at 2 ranks: both ranks stop at the same step, exit 1, and the run file
# keeps the steps before it with status failed and the reason.
out = WORK / "nan_2.h5"
proc = run(2, TINY + ["--set", "train.steps=50", "--set", "train.lr=1e12", "--set",
                      "train.grad_clip=0", "--set", "train.warmup_steps=0"], out)
assert proc.returncode == 1, (proc.returncode, proc.stderr)
with h5py.File(out, "r") as f:
    assert f.attrs["status"] == "failed" and "non-finite" in f.attrs["error"], dict(f.attrs)
    assert 1 <= f["train/loss"].shape[0] < 50
print("NaN at 2 ranks: run failed with its reason")
print("ok")
