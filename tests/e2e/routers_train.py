#!/usr/bin/env python3
"""Every routing method trains the 2-layer model on the synthetic corpus: the run completes,
the loss falls, and routing statistics are recorded for every training step.
usage: routers_train.py MOE_TRAIN WORKDIR
"""
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

TRAIN, WORK = sys.argv[1], Path(sys.argv[2])
WORK.mkdir(parents=True, exist_ok=True)
STEPS, B, S, E = 80, 8, 32, 8
TINY = ["--set", "model.vocab_size=512", "--set", "model.d_model=64", "--set", "model.n_heads=2",
        "--set", f"model.seq_len={S}", "--set", "model.n_layers=2", "--set", "model.d_ff=64",
        "--set", f"model.num_experts={E}", "--set", f"train.batch_size={B}",
        "--set", f"train.steps={STEPS}", "--set", "train.eval_every=40",
        "--set", "data.train_tokens=200000", "--set", "data.val_tokens=8192",
        "--set", "train.eval_batches=4"]
ROUTERS = {
    "dense": ["--set", "model.num_experts=1", "--set", "model.top_k=1"],
    "topk": ["--set", "model.top_k=2", "--set", "router.capacity_factor=1.0",
             "--set", "router.drop_policy=probability", "--set", "router.normalize_gates=true",
             "--set", "router.jitter_noise=0.01"],
    "hash": ["--set", "router.type=hash", "--set", "model.top_k=1"],
    "maskmoe": ["--set", "router.type=maskmoe", "--set", "router.mask_ratio=0.5",
                "--set", "router.visible_experts=4", "--set", "model.top_k=2"],
    "moec": ["--set", "router.type=moec", "--set", "router.cluster_size=4", "--set", "model.top_k=1",
             "--set", "router.cluster_loss_weight=3", "--set", "router.expert_dropout=0.25",
             "--set", "router.dropout_interval=20"],
    "expert_choice": ["--set", "router.type=expert_choice", "--set", "router.capacity_factor=2"],
}
for name, extra in ROUTERS.items():
    out = WORK / f"{name}.h5"
    proc = subprocess.run([TRAIN, *TINY, *extra, "--output", str(out), "--overwrite"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, (name, proc.stderr)
    with h5py.File(out, "r") as f:
        assert f.attrs["status"] == "complete", name
        loss = f["train/loss"][:]
        assert loss.shape == (STEPS,)
        first, last = loss[:10].mean(), loss[-10:].mean()
        assert last < first - 1.0, f"{name}: loss {first:.3f} -> {last:.3f}"
        layers = [k for k in f["routing"].keys()] if "routing" in f else []
        if name == "dense":
            assert layers == [], layers
        else:
            assert layers == ["layer_0", "layer_1"], layers
            for layer in layers:
                tpe = f[f"routing/{layer}/tokens_per_expert"][:]
                assert tpe.shape == (STEPS, E), (name, tpe.shape)
                assert f[f"routing/{layer}/router_entropy"].shape == (STEPS,)
                totals = tpe.sum(axis=1)
                if name == "expert_choice":
                    assert np.all(totals == E * (B * S * 2 // E)), totals  # E experts x C tokens
                elif name in ("hash", "moec"):
                    assert np.all(totals == B * S), totals
                elif name == "maskmoe":
                    assert np.all((totals >= B * S) & (totals <= 2 * B * S)), totals
                else:
                    assert np.all(totals == 2 * B * S), totals
            if name == "moec":
                assert np.all(f["train/cluster_loss"][:] > 0)
                # expert dropout: in every training step some expert got no token
                tpe = f["routing/layer_0/tokens_per_expert"][:]
                assert np.all((tpe == 0).sum(axis=1) >= 2), tpe[:3]
            if name == "topk":
                assert f["routing/layer_0/dropped"][:].sum() > 0
    print(f"{name:14s} loss {first:.3f} -> {last:.3f}  ok")
print("ok")
