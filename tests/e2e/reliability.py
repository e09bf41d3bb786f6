#!/usr/bin/env python3
"""Issue 16's cases, one per invocation: nothing lost under a second run, a full disk or a
leftover file; every bad input one line and exit 2.

    reliability.py BIN_DIR SRC_DIR WORK_DIR CASE

CASE is one of the names in CASES below (the issue's case number first). Each case builds its
files under WORK_DIR/CASE from scratch and asserts the behaviour against independent
expectations: the bytes of files that must not change, a reference run for exact resumes.
"""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

BIN, SRC, WORK, CASE = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
TRAIN, STUDY, DATA = str(BIN / "moe-train"), str(BIN / "moe-study"), str(BIN / "moe-data")
REPORT = str(SRC / "analysis" / "report.py")
D = WORK / CASE
shutil.rmtree(D, ignore_errors=True)
D.mkdir(parents=True)
os.chdir(D)

TINY = ["--set", "model.vocab_size=256", "--set", "model.d_model=32", "--set", "model.n_heads=2",
        "--set", "model.seq_len=32", "--set", "model.n_layers=2", "--set", "model.d_ff=64",
        "--set", "model.num_experts=4", "--set", "train.batch_size=4",
        "--set", "data.train_tokens=20000", "--set", "data.val_tokens=4096",
        "--set", "train.eval_batches=2", "--set", "train.warmup_steps=5",
        "--set", "train.eval_every=10"]


def train(out, *extra):
    return subprocess.run([TRAIN, *TINY, *extra, "--output", str(out)], capture_output=True,
                          text=True)


def ok(proc):
    assert proc.returncode == 0, (proc.returncode, proc.stderr)
    return proc


def refused(proc, *needles):
    """Exit 2 with exactly one stderr line naming every needle."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stderr.count("\n") == 1, proc.stderr
    for n in needles:
        assert n in proc.stderr, (n, proc.stderr)
    return proc.stderr.strip()


def snapshot(*paths):
    """Bytes of each path (None when absent)."""
    return {str(p): (Path(p).read_bytes() if Path(p).exists() else None) for p in paths}


def metrics(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][:] for k in ("train/loss", "train/grad_norm", "eval/val_loss",
                                     "routing/layer_0/tokens_per_expert")}


def same_metrics(a, b):
    for k in a:
        assert a[k].shape == b[k].shape and np.array_equal(a[k], b[k], equal_nan=True), k


def case1_second_run():
    """A second run on a live run's output is refused before anything is touched; the first
    run goes on and ends (SIGTERM: checkpoint and stop) with a readable file that --resume
    completes."""
    out = D / "live.h5"
    live = ["--set", "train.steps=100000", "--set", "output.checkpoint_every=50"]
    first = subprocess.Popen([TRAIN, *TINY, *live, "--output", str(out)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in first.stdout:
        if line.startswith("step "):
            break
    assert first.poll() is None, "the first run ended before the second started"
    before = snapshot(str(out) + ".ckpt")
    msg = refused(train(out, "--set", "train.steps=5"), "live.h5", "in use by another run")
    msg2 = refused(train(out, "--set", "train.steps=5", "--overwrite"), "in use")
    msg3 = refused(train(out, *live, "--resume"), "in use")
    with h5py.File(out, "r") as f:  # the live file stays readable while it is written
        assert f.attrs["status"] == "running"
    first.send_signal(signal.SIGTERM)
    first.stdout.read()
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert before[str(out) + ".ckpt"] is not None
    with h5py.File(out, "r") as f:
        assert f.attrs["status"] == "running"
        steps = f["train/loss"].shape[0]
        assert steps >= 1 and f["train/step"][-1] == steps - 1
    ok(train(out, *live, "--stop-after", "3", "--resume"))
    with h5py.File(out, "r") as f:
        assert f["train/loss"].shape[0] == steps + 3 and f.attrs["resume_count"] == 1
    print("ok:", msg, "|", msg2, "|", msg3)


def case3_disk_full():
    """Past a file-size limit: one line naming the file and the OS error, exit 1, no crash,
    the last good checkpoint intact; freeing the space lets --resume finish exactly."""
    # Big enough parameters (2.3M: a 27 MB checkpoint) that the first checkpoint with them
    # exceeds the 16 MB limit, which leaves room for MPI's own start-up files (~2-5 MB here).
    big = ["--set", "model.d_model=128", "--set", "model.n_heads=4", "--set", "model.d_ff=1024",
           "--set", "train.steps=20", "--set", "output.checkpoint_every=5"]
    ref = D / "ref.h5"
    ok(train(ref, *big))
    out = D / "full.h5"
    cmd = " ".join([TRAIN, *TINY, *big, "--output", str(out)])
    proc = subprocess.run(["bash", "-c", "ulimit -f 16000 && exec " + cmd], capture_output=True,
                          text=True)
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "full.h5.ckpt" in proc.stderr and "File too large" in proc.stderr, proc.stderr
    assert not list(D.glob("full.h5*.tmp*")), "temporary files left behind"
    with h5py.File(str(out) + ".ckpt", "r") as ck:  # the step-0 checkpoint, whole
        assert ck.attrs["next_step"] == 0
    with h5py.File(out, "r") as f:
        assert f.attrs["status"] == "failed" and "File too large" in f.attrs["error"]
    ok(train(out, *big, "--resume"))
    same_metrics(metrics(ref), metrics(out))
    print("ok:", proc.stderr.strip())


def case4_leftover_checkpoint():
    """A new run where an unfinished run's checkpoint lies is refused (no silent resume)."""
    out = D / "left.h5"
    ok(train(out, "--set", "train.steps=30", "--stop-after", "5"))
    before = snapshot(out, str(out) + ".ckpt")
    msg = refused(train(out, "--set", "train.steps=30"), "left.h5.ckpt", "--resume", "--overwrite")
    assert snapshot(out, str(out) + ".ckpt") == before
    ok(train(out, "--set", "train.steps=30", "--overwrite"))
    with h5py.File(out, "r") as f:  # started over: no resume
        assert f.attrs["status"] == "complete" and f.attrs["resume_count"] == 0
    print("ok:", msg)


def case5_complete_run():
    """A complete run is not overwritten without --overwrite."""
    out = D / "done.h5"
    ok(train(out, "--set", "train.steps=10"))
    before = snapshot(out, str(out) + ".ckpt")
    msg = refused(train(out, "--set", "train.steps=12"), "done.h5", "complete", "--overwrite")
    assert snapshot(out, str(out) + ".ckpt") == before
    ok(train(out, "--set", "train.steps=12", "--overwrite"))
    with h5py.File(out, "r") as f:
        assert f.attrs["status"] == "complete" and f["train/loss"].shape == (12,)
    print("ok:", msg)


def case6_output_is_input():
    """--output naming the config file (or a data file) is refused; the input is unchanged."""
    cfg = D / "run.toml"
    cfg.write_text("[train]\nsteps = 5\n")
    before = snapshot(cfg)
    msg = refused(subprocess.run([TRAIN, "--config", str(cfg), *TINY, "--output", str(cfg)],
                                 capture_output=True, text=True), "run.toml", "input")
    assert snapshot(cfg) == before
    text = D / "corpus.txt"
    text.write_text("".join("line %d of a small text corpus\n" % i for i in range(400)))
    before = snapshot(text)
    refused(train(text, "--set", "data.source=text", "--set", f"data.path={text}"), "corpus.txt")
    assert snapshot(text) == before
    print("ok:", msg)


def case7_resume_config():
    """--resume with another lr, router or seed is refused naming each key; train.steps may
    change."""
    out = D / "res.h5"
    ok(train(out, "--set", "train.steps=30", "--stop-after", "5"))
    before = snapshot(out, str(out) + ".ckpt")
    msg = refused(train(out, "--set", "train.steps=30", "--resume", "--set", "train.lr=1e-3",
                        "--set", "router.type=hash", "--set", "model.top_k=1",
                        "--set", "train.seed=7"),
                  "train.lr", "router.type", "train.seed", "model.top_k")
    assert snapshot(out, str(out) + ".ckpt") == before
    ok(train(out, "--set", "train.steps=40", "--resume"))
    with h5py.File(out, "r") as f:
        assert f.attrs["status"] == "complete" and f["train/loss"].shape == (40,)
    print("ok:", msg)


def case8_data_cache():
    """A damaged prepared-data cache (truncated counts.tsv, garbage in info.txt, a truncated
    token file) is detected and rebuilt: the run sees the same data as with an intact cache."""
    text = D / "corpus.txt"
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    text.write_text("".join(" ".join(words[(i * 7 + j * 3) % 8] for j in range(12)) + "\n"
                            for i in range(3000)))
    data = ["--set", "data.source=text", "--set", f"data.path={text}",
            "--set", f"data.cache_dir={D / 'cache'}", "--set", "data.train_tokens=0",
            "--set", "model.vocab_size=64", "--set", "train.steps=3"]
    ok(subprocess.run([DATA, "prepare", *data], capture_output=True, text=True))
    (cache,) = [p for p in (D / "cache").iterdir() if p.is_dir()]
    ok(train(D / "good.h5", *TINY, *data))
    with h5py.File(D / "good.h5", "r") as f:
        entropy = f.attrs["data_unigram_entropy"]
    assert entropy > 0.5

    def damage(name, how):
        p = cache / name
        b = p.read_bytes()
        p.write_bytes(b[: len(b) // 2] if how == "truncate" else b.replace(b"= ", b"= x", 1))

    for i, (name, how) in enumerate([("counts.tsv", "truncate"), ("info.txt", "garbage"),
                                     ("train.bin", "truncate")]):
        damage(name, how)
        proc = ok(train(D / f"after{i}.h5", *TINY, *data))
        assert "damaged" in proc.stderr and name in proc.stderr, proc.stderr
        assert "stoll" not in proc.stderr and "stoi" not in proc.stderr
        with h5py.File(D / f"after{i}.h5", "r") as f:
            assert f.attrs["data_unigram_entropy"] == entropy
        proc = ok(train(D / f"again{i}.h5", *TINY, *data))  # rebuilt: quiet now
        assert "damaged" not in proc.stderr, proc.stderr
        print("ok:", name, how, "->", proc.stderr.strip() or "rebuilt")


def case10_report_missing():
    """The report marks a point whose run file is missing or unreadable, whatever the index
    says (the index still calls both complete)."""
    study = D / "smoke"
    ok(subprocess.run([STUDY, str(SRC / "studies" / "smoke.toml"), "--output-dir", str(study)],
                      capture_output=True, text=True))
    files = sorted(study.glob("*.h5"))
    assert len(files) == 4
    files[0].unlink()
    files[1].write_bytes(b"not an HDF5 file")
    proc = ok(subprocess.run([sys.executable, REPORT, str(study), "--out", str(D / "report")],
                             capture_output=True, text=True))
    assert "missing" in proc.stderr and "unreadable" in proc.stderr, proc.stderr
    points = (D / "report" / "points.csv").read_text().splitlines()
    status = {row.split(",")[0]: row.split(",")[1] for row in points[1:]}
    assert status[files[0].stem] == "missing", status
    assert status[files[1].stem] == "unreadable", status
    assert sum(s == "complete" for s in status.values()) == 2, status
    md = (D / "report" / "report.md").read_text()
    assert f"`{files[0].stem}` (missing)" in md and f"`{files[1].stem}` (unreadable)" in md
    print("ok:", status)


def case11_bad_paths():
    """--config /dev/zero and an empty --output: one line, exit 2, nothing written."""
    msg = refused(subprocess.run([TRAIN, "--config", "/dev/zero", "--output", str(D / "z.h5")],
                                 capture_output=True, text=True), "/dev/zero", "regular file")
    msg2 = refused(subprocess.run([TRAIN, "--output", ""], capture_output=True, text=True),
                   "--output")
    msg3 = refused(subprocess.run([TRAIN, "--set", "output.path=", "--set", "train.steps=1"],
                                  capture_output=True, text=True), "output.path")
    assert list(D.iterdir()) == [], list(D.iterdir())
    assert not Path("run.h5").exists()
    print("ok:", msg, "|", msg2, "|", msg3)


def case12_memory():
    """A config that cannot fit is refused at once with the figures, before allocating."""
    t0 = time.time()
    msg = refused(train(D / "huge.h5", "--set", "model.d_model=65536", "--set",
                        "model.d_ff=1048576", "--set", "model.num_experts=1024",
                        "--set", "model.n_heads=64"),
                  "needs at least", "PiB of memory", "available")
    assert time.time() - t0 < 30
    assert not (D / "huge.h5").exists() and not (D / "huge.h5.ckpt").exists()
    print("ok:", msg)


CASES = {f.__name__: f for f in (case1_second_run, case3_disk_full, case4_leftover_checkpoint,
                                 case5_complete_run, case6_output_is_input, case7_resume_config,
                                 case8_data_cache, case10_report_missing, case11_bad_paths,
                                 case12_memory)}
CASES[CASE]()
