"""The reference model's shape: the overrides moe-bench starts from (src/programs/moe_bench.cpp),
shared by bench.py and benchmarks/vs_torch.py (no torch import here)."""

REFERENCE = [
    "model.d_model=512", "model.d_ff=2048", "model.num_experts=8", "model.top_k=2",
    "model.seq_len=256", "model.n_layers=4", "model.n_heads=8", "model.vocab_size=8192",
    "train.batch_size=16",
]  # fmt: skip
