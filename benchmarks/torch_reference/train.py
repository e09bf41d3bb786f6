"""The suite's training step in PyTorch (docs/model.md, "Optimizer, clipping, schedule"):
AdamW with betas (0.9, 0.95) and eps 1e-8, decay only on the matrices and embeddings, global
gradient-norm clipping, linear warmup then cosine decay to min_lr_ratio * lr."""

import math
from dataclasses import dataclass

import torch

import model as ref


@dataclass
class Training:
    """The [train] keys the step reads (defaults as in the suite's config.hpp)."""

    steps: int = 300
    batch_size: int = 16
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 30
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 1234


def training_from_config(cfg):
    train = cfg.get("train", {})
    return Training(**{k: train[k] for k in Training.__dataclass_fields__ if k in train})


def learning_rate(t, step):
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    span = max(1, t.steps - 1 - t.warmup_steps)
    progress = min(1.0, (step - t.warmup_steps) / span)
    floor = t.lr * t.min_lr_ratio
    return floor + 0.5 * (t.lr - floor) * (1.0 + math.cos(math.pi * progress))


def clip_gradients(params, max_norm):
    """Scales every gradient by max_norm / norm when the global norm exceeds max_norm (> 0).
    Returns the norm before clipping (accumulated in double, as the suite does)."""
    grads = [p.grad for p in params if p.grad is not None]
    norm = math.sqrt(sum(float(torch.sum(g.double() * g.double())) for g in grads))
    if max_norm > 0 and norm > max_norm:
        factor = max_norm / norm
        for g in grads:
            g.mul_(factor)
    return norm


class Trainer:
    """One training step of MoEModel: zero grads, loss = CE + aux, backward, clip, AdamW."""

    def __init__(self, net, training):
        self.net, self.t = net, training
        decay = {t.name for t in ref.layout(net.shape) if t.decay}
        groups = [
            {
                "params": [p for n, p in net.p.items() if n in decay],
                "weight_decay": training.weight_decay,
            },
            {"params": [p for n, p in net.p.items() if n not in decay], "weight_decay": 0.0},
        ]
        self.opt = torch.optim.AdamW(
            groups, lr=training.lr, betas=(0.9, 0.95), eps=1e-8, foreach=True
        )

    def step(self, step, tokens, targets):
        """Returns (cross-entropy, weighted aux, gradient norm before clipping)."""
        self.opt.zero_grad(set_to_none=True)
        ce, aux, _, _ = self.net.forward(tokens, targets)
        (ce + aux).backward()
        norm = clip_gradients(self.net.parameters(), self.t.grad_clip)
        for group in self.opt.param_groups:
            group["lr"] = learning_rate(self.t, step)
        self.opt.step()
        return ce.item(), aux.item(), norm
