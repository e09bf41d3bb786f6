#!/usr/bin/env python3
"""End to end: moe-train trains the 2-layer, 8-expert, top-2 model on the synthetic corpus.

Checks, on the run file it writes (read with h5py, independently of the C++ code):
- the names the design promises exist with consistent shapes;
- the validation loss ends well below the corpus's unigram entropy and heads for the
  printed entropy rate (more than halfway from the unigram entropy to the entropy rate);
- tokens_per_expert has one row per training step, each summing to tokens * top_k.
usage: train_synthetic.py MOE_TRAIN WORKDIR
"""
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

train, work = sys.argv[1], Path(sys.argv[2])
work.mkdir(parents=True, exist_ok=True)
out = work / "train_synthetic.h5"
steps, batch, seq, k = 150, 16, 64, 2
cmd = [train, "--set", f"train.steps={steps}", "--set", f"train.batch_size={batch}",
       "--set", f"model.seq_len={seq}", "--set", "model.n_layers=2",
       "--set", "model.num_experts=8", "--set", f"model.top_k={k}",
       "--set", "train.eval_every=50", "--output", str(out), "--overwrite"]
proc = subprocess.run(cmd, capture_output=True, text=True)
print(proc.stdout[-2000:])
assert proc.returncode == 0, proc.stderr

with h5py.File(out, "r") as f:
    assert f.attrs["status"] == "complete", f.attrs["status"]
    assert "num_experts = 8" in f["config"][()].decode()
    step, loss = f["train/step"][:], f["train/loss"][:]
    assert list(step) == list(range(steps)), step[:5]
    assert loss.shape == (steps,) and np.all(np.isfinite(loss))
    estep, val = f["eval/step"][:], f["eval/val_loss"][:]
    assert list(estep) == [50, 100, 150], estep
    unigram = float(f.attrs["data_unigram_entropy"])
    rate = float(f.attrs["data_entropy_rate"])
    halfway = rate + 0.5 * (unigram - rate)
    print(f"val_loss {val[-1]:.4f}  unigram entropy {unigram:.4f}  entropy rate {rate:.4f}")
    assert val[-1] < halfway, f"val loss {val[-1]} not below {halfway}"
    assert val[-1] > rate - 0.05, "below the entropy rate: the estimate or the loss is wrong"
    assert loss[-10:].mean() < loss[:10].mean() - 1.0
    for layer in (0, 1):
        tpe = f[f"routing/layer_{layer}/tokens_per_expert"][:]
        assert tpe.shape == (steps, 8), tpe.shape
        assert np.all(tpe.sum(axis=1) == batch * seq * k)
        assert np.all(f[f"routing/layer_{layer}/dropped"][:] == 0)  # dropless by default
print("ok")
