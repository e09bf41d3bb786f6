#!/usr/bin/env python3
"""End to end: a text corpus, prepared by moe-data and trained on by moe-train.

- moe-data prepare tokenizes a generated text file (SentencePiece bpe, vocab 256) into the
  cache; a second call reuses it;
- the cached token files follow the llm.c format (checked with numpy, independently of the C++
  reader) and counts.tsv sums to the training token count;
- moe-train --set data.source=text trains 20 steps: a complete run file, finite losses that go
  down, entropy rate NaN (unknown for real text);
- bad data input (missing file, token file with a wrong magic, bad moe-data command): one line
  on stderr naming it, exit 2, no run file.
usage: data_text.py MOE_TRAIN MOE_DATA WORKDIR
"""
import random
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

train, data, work = sys.argv[1], sys.argv[2], Path(sys.argv[3]) / "data_text"
shutil.rmtree(work, ignore_errors=True)
work.mkdir(parents=True)

# A pseudo-English text with learnable structure: subject verb object phrases.
rng = random.Random(5)
subjects = ["the king", "his servant", "the people", "a man", "the lord", "my brother", "they"]
verbs = ["went unto", "spake to", "gave bread to", "built a house for", "saw", "called"]
objects = ["the city", "the river", "the mountain", "the field", "his house", "the gate"]
lines = []
for i in range(3000):
    parts = [f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)}"
             for _ in range(rng.randint(1, 3))]
    lines.append((", and ".join(parts) + ".").capitalize())
text = work / "corpus.txt"
text.write_text("\n".join(lines) + "\n")
cache = work / "cache"
common = ["--set", "data.source=text", "--set", f"data.path={text}",
          "--set", f"data.cache_dir={cache}", "--set", "model.vocab_size=256"]

# Preparation, then reuse.
p = subprocess.run([data, "prepare"] + common, capture_output=True, text=True)
print(p.stdout)
assert p.returncode == 0, p.stderr
assert p.stdout.startswith("prepared "), p.stdout
p2 = subprocess.run([data, "prepare"] + common, capture_output=True, text=True)
assert p2.returncode == 0 and p2.stdout.startswith("reused "), p2.stdout + p2.stderr

(prepared,) = list(cache.iterdir())
def token_file(path):
    header = np.fromfile(path, dtype=np.int32, count=256)
    assert header[0] == 20240520 and header[1] == 1, header[:3]
    ids = np.fromfile(path, dtype=np.uint16, offset=1024)
    assert len(ids) == header[2], (len(ids), header[2])
    assert ids.max() < 256
    return ids
tr, va = token_file(prepared / "train.bin"), token_file(prepared / "val.bin")
te = token_file(prepared / "test.bin")
# 60 chunks of 50 lines, one validation and one test chunk in each 20: one end-of-line id a line.
assert (tr == 1).sum() == 2700 and (va == 1).sum() == 150 and (te == 1).sum() == 150
counts = [int(l.split("\t")[1]) for l in (prepared / "counts.tsv").read_text().splitlines()
          if not l.startswith("#")]
assert len(counts) == 256 and sum(counts) == len(tr)
assert np.array_equal(np.bincount(tr, minlength=256), counts)

# Training on it.
out = work / "run.h5"
steps = 20
cmd = [train] + common + [
    "--set", f"train.steps={steps}", "--set", "train.batch_size=8", "--set", "model.seq_len=32",
    "--set", "model.d_model=32", "--set", "model.n_layers=1", "--set", "model.n_heads=2",
    "--set", "model.d_ff=64", "--set", "model.num_experts=4", "--set", "model.top_k=2",
    "--set", "train.eval_every=10", "--set", "train.eval_batches=2", "--set", "train.lr=1e-2",
    "--set", "train.warmup_steps=2", "--output", str(out)]
t = subprocess.run(cmd, capture_output=True, text=True)
print(t.stdout[-1500:])
assert t.returncode == 0, t.stderr
with h5py.File(out, "r") as f:
    assert f.attrs["status"] == "complete", f.attrs["status"]
    loss = f["train/loss"][:]
    assert loss.shape == (steps,) and np.all(np.isfinite(loss))
    assert loss[-5:].mean() < loss[:5].mean() - 0.5, loss
    assert np.isnan(f.attrs["data_entropy_rate"])
    desc = f.attrs["data_description"]
    desc = desc.decode() if isinstance(desc, bytes) else desc
    assert desc.startswith("text ") and "sentencepiece bpe 256" in desc, desc
    assert list(f["eval/step"][:]) == [10, 20]

# Bad input: one line, exit 2, no run file.
bad_magic = work / "bad.bin"
header = np.zeros(256, dtype=np.int32)
header[:3] = [12345, 1, 4]
with open(bad_magic, "wb") as fh:
    fh.write(header.tobytes() + np.arange(4, dtype=np.uint16).tobytes())
cases = [
    ("missing", [train, "--set", "data.source=text", "--set", f"data.path={work}/nope*.txt"],
     "data.path"),
    ("magic", [train, "--set", "data.source=tokens", "--set", f"data.path={bad_magic}"],
     str(bad_magic)),
    ("no_path", [train, "--set", "data.source=tokens"], "data.path"),
    ("command", [data, "frobnicate"], "frobnicate"),
    ("data_missing", [data, "prepare", "--set", "data.source=text",
                      "--set", f"data.path={work}/nope.txt"], "data.path"),
]
for name, args, needle in cases:
    run_out = work / f"{name}.h5"
    if args[0] == train:
        args = args + ["--output", str(run_out)]
    r = subprocess.run(args, capture_output=True, text=True)
    err = r.stderr.strip().splitlines()
    assert r.returncode == 2, (name, r.returncode, r.stderr)
    assert len(err) == 1 and needle in err[0], (name, r.stderr)
    assert not run_out.exists(), name
    print(f"ok   {name}: {err[0]}")
print("ok")
