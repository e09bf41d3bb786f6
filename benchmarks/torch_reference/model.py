"""moe-suite's model in PyTorch, written from docs/model.md (not from the C++).

The pre-LN decoder-only transformer with learned position embeddings, fused QKV, biases,
tanh-GELU feed-forward blocks that are MoE layers (top-k router with capacity, drop policy,
Switch balance loss and ST-MoE z-loss) or dense (num_experts = 1), a final layernorm and an
LM head tied to the token embedding. Parameters carry the suite's names and shapes, so a flat
buffer of the suite (a checkpoint's `params`, or grad_dump's) loads tensor by tensor.
Only router.type = "topk" without jitter is implemented here.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

LN_EPS = 1e-5


@dataclass
class Shape:
    """The [model] keys that fix the architecture (docs/model.md, "Configuration")."""

    vocab_size: int = 1024
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 256
    seq_len: int = 64
    num_experts: int = 8
    top_k: int = 2
    moe_every: int = 1


@dataclass
class Routing:
    """The [router] keys the top-k MoE layer reads."""

    capacity_factor: float = 0.0  # 0 = dropless
    drop_policy: str = "position"  # or "probability"
    drop_order: str = "slot"  # position drops: all first choices before second ones, or "token"
    balance_count: str = "first"  # balance loss f counts first choices, or "all" k choices
    normalize_gates: bool = False
    aux_loss_weight: float = 0.01
    z_loss_weight: float = 1e-3


def from_config(cfg):
    """Shape and Routing from a parsed suite config (a dict of TOML sections)."""
    model, router = cfg.get("model", {}), cfg.get("router", {})
    if router.get("type", "topk") != "topk":
        raise ValueError(f"router.type = {router['type']!r}: only 'topk' is implemented")
    if router.get("jitter_noise", 0.0) != 0.0:
        raise ValueError("router.jitter_noise: only 0 is implemented")
    shape = Shape(**{k: int(model[k]) for k in Shape.__dataclass_fields__ if k in model})
    routing = Routing(**{k: router[k] for k in Routing.__dataclass_fields__ if k in router})
    return shape, routing


def block_is_moe(shape, layer):
    return shape.num_experts > 1 and (layer + 1) % shape.moe_every == 0


@dataclass
class Tensor:
    name: str
    shape: tuple
    init: str  # "normal", "zeros", "ones"
    std: float
    decay: bool


def layout(shape):
    """The tensors in flat-buffer order (docs/model.md, "Parameter layout")."""
    C, Fd, V, S = shape.d_model, shape.d_ff, shape.vocab_size, shape.seq_len
    proj_std = 0.02 / math.sqrt(2.0 * shape.n_layers)
    out = []

    def add(name, dims, init, std=0.0):
        out.append(Tensor(name, tuple(dims), init, std, len(dims) >= 2 and init == "normal"))

    add("wte", (V, C), "normal", 0.02)
    add("wpe", (S, C), "normal", 0.01)
    for layer in range(shape.n_layers):
        p = f"layer{layer}."
        add(p + "ln1.g", (C,), "ones")
        add(p + "ln1.b", (C,), "zeros")
        add(p + "attn.qkv_w", (C, 3 * C), "normal", 0.02)
        add(p + "attn.qkv_b", (3 * C,), "zeros")
        add(p + "attn.proj_w", (C, C), "normal", proj_std)
        add(p + "attn.proj_b", (C,), "zeros")
        add(p + "ln2.g", (C,), "ones")
        add(p + "ln2.b", (C,), "zeros")
        moe = block_is_moe(shape, layer)
        G = shape.num_experts if moe else 1
        if moe:
            add(p + "router.w", (C, shape.num_experts), "normal", 0.02)
        add(p + "ffn.w1", (G, C, Fd), "normal", 0.02)
        add(p + "ffn.b1", (G, Fd), "zeros")
        add(p + "ffn.w2", (G, Fd, C), "normal", proj_std)
        add(p + "ffn.b2", (G, C), "zeros")
    add("lnf.g", (C,), "ones")
    add("lnf.b", (C,), "zeros")
    return out


# --- initialisation: counter-based normals (docs/model.md, "Initialisation") -------------------

_M64 = (1 << 64) - 1


def _splitmix64(x):
    """splitmix64's finaliser on a numpy uint64 array (wrapping arithmetic)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _hash64(a, b):
    """hash64(a, b) = splitmix64(splitmix64(a) ^ b); a a scalar, b an array."""
    return _splitmix64(_splitmix64(np.array([a], dtype=np.uint64))[0] ^ b)


def _fnv1a(text):
    h = 1469598103934665603
    for c in text.encode():
        h = ((h ^ c) * 1099511628211) & _M64
    return h


def init_values(tensor, seed):
    """The initial values of one tensor (float64 numpy array of its shape)."""
    n = int(np.prod(tensor.shape))
    if tensor.init == "zeros":
        return np.zeros(tensor.shape)
    if tensor.init == "ones":
        return np.ones(tensor.shape)
    with np.errstate(over="ignore"):
        key = int(_hash64(seed, np.array([_fnv1a(tensor.name)], dtype=np.uint64))[0])
        i = np.arange(n, dtype=np.uint64)
        h1 = _hash64(key, np.uint64(2) * i)
        h2 = _hash64(key, np.uint64(2) * i + np.uint64(1))
    u1 = ((h1 >> np.uint64(11)) + np.uint64(1)).astype(np.float64) * 2.0**-53
    u2 = (h2 >> np.uint64(11)).astype(np.float64) * 2.0**-53
    z = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * math.pi * u2)
    return (tensor.std * z).reshape(tensor.shape)


def init_params(shape, seed, dtype=torch.float32):
    """Every parameter as in the suite for train.seed = seed, as leaf tensors needing grad."""
    return {
        t.name: torch.tensor(init_values(t, seed), dtype=dtype).requires_grad_()
        for t in layout(shape)
    }


def params_from_flat(shape, flat, dtype=torch.float64):
    """Parameters from a flat buffer in the suite's layout (a checkpoint's or grad_dump's)."""
    flat = np.asarray(flat)
    out, offset = {}, 0
    for t in layout(shape):
        n = int(np.prod(t.shape))
        values = flat[offset : offset + n].reshape(t.shape)
        out[t.name] = torch.tensor(values, dtype=dtype).requires_grad_()
        offset += n
    if offset != flat.size:
        raise ValueError(f"flat buffer holds {flat.size} values, the layout {offset}")
    return out


# --- forward ---------------------------------------------------------------------------------


def capacity(tokens, k, experts, factor):
    """Copies an expert keeps: ceil(tokens * k / E * factor); 0 (no limit) when factor = 0."""
    if factor == 0.0:
        return 0
    return math.ceil(float(tokens) * float(k) / float(experts) * factor)


def _kept(expert_of, priority, E, cap, policy, K=1, order="token"):
    """Which of the A assignments survive the capacity (bool [A])."""
    A = expert_of.numel()
    if cap <= 0:
        return torch.ones(A, dtype=torch.bool)
    if policy == "position":
        # Rank of each copy among its expert's copies, in assignment order (a = n*K + j), or
        # slot-major (GShard): every token's slot 0, then every token's slot 1, ...
        walk = torch.arange(A)
        if order == "slot" and K > 1:
            walk = walk.view(A // K, K).t().reshape(-1)
        onehot = F.one_hot(expert_of[walk], E)
        rank = torch.empty(A, dtype=torch.long)
        rank[walk] = (onehot.cumsum(0) - 1).gather(1, expert_of[walk][:, None]).squeeze(1)
        return rank < cap
    # "probability": the cap copies of highest gate, ties to the lower assignment index.
    kept = torch.zeros(A, dtype=torch.bool)
    for e in range(E):
        idx = (expert_of == e).nonzero().squeeze(1)
        if idx.numel() > cap:
            order = torch.sort(priority[idx], descending=True, stable=True).indices
            idx = idx[order[:cap]]
        kept[idx] = True
    return kept


class MoEModel:
    """The suite's model over a dict of parameter tensors (any float dtype)."""

    def __init__(self, shape, routing, params):
        self.shape, self.routing, self.p = shape, routing, params
        self.last_routing = (
            []
        )  # per MoE block: (block, expert_of [A], kept [A]) of the last forward

    def parameters(self):
        return list(self.p.values())

    def _ln(self, x, prefix):
        C = self.shape.d_model
        return F.layer_norm(x, (C,), self.p[prefix + ".g"], self.p[prefix + ".b"], LN_EPS)

    def _attention(self, x, p):
        B, S, C = x.shape
        H = self.shape.n_heads
        qkv = torch.addmm(self.p[p + "attn.qkv_b"], x.reshape(B * S, C), self.p[p + "attn.qkv_w"])
        q, k, v = qkv.view(B, S, 3, H, C // H).permute(2, 0, 3, 1, 4)  # each [B,H,S,hd]
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # scale 1/sqrt(hd)
        y = y.transpose(1, 2).reshape(B * S, C)
        return torch.addmm(self.p[p + "attn.proj_b"], y, self.p[p + "attn.proj_w"]).view(B, S, C)

    def _mlp(self, x, p, g):
        h = F.gelu(
            torch.addmm(self.p[p + "ffn.b1"][g], x, self.p[p + "ffn.w1"][g]), approximate="tanh"
        )
        return torch.addmm(self.p[p + "ffn.b2"][g], h, self.p[p + "ffn.w2"][g])

    def _moe(self, x, p, block):
        """x [N,C] -> (out [N,C], balance, z)."""
        N, C = x.shape
        E, K, r = self.shape.num_experts, self.shape.top_k, self.routing
        logits = x @ self.p[p + "router.w"]  # [N,E], no bias
        probs = torch.softmax(logits, dim=-1)
        # Top-k by probability, descending; ties to the lower expert index (stable sort).
        chosen = torch.sort(probs.detach(), dim=-1, descending=True, stable=True).indices[:, :K]
        gate = probs.gather(1, chosen)  # [N,K]
        if r.normalize_gates:
            gate = gate / gate.sum(dim=-1, keepdim=True)
        expert_of = chosen.reshape(-1)  # assignment a = n*K + j
        gate = gate.reshape(-1)
        # Switch balance loss (before the capacity cut; f is constant): f over the tokens' first
        # choices (balance_count = "first") or over all N*K assignments ("all").
        counted = chosen[:, 0] if r.balance_count == "first" else expert_of
        counts = torch.bincount(counted, minlength=E).to(probs.dtype)
        balance = E * (counts / counted.numel() * probs.mean(dim=0)).sum()
        z = (
            torch.logsumexp(logits, dim=-1).pow(2).mean()
            if r.z_loss_weight > 0
            else probs.new_zeros(())
        )
        kept = _kept(
            expert_of,
            gate.detach(),
            E,
            capacity(N, K, E, r.capacity_factor),
            r.drop_policy,
            K,
            r.drop_order,
        )
        self.last_routing.append((block, expert_of, kept))
        # Group the kept copies by expert (stable: token order within an expert), one MLP each.
        sel = kept.nonzero().squeeze(1)
        sel = sel[torch.sort(expert_of[sel], stable=True).indices]
        per_expert = torch.bincount(expert_of[sel], minlength=E).tolist()
        token = sel // K
        xs = x.index_select(0, token)
        ys = [
            self._mlp(chunk, p, e)
            for e, chunk in enumerate(torch.split(xs, per_expert))
            if chunk.shape[0] > 0
        ]
        y = torch.cat(ys) if ys else x.new_zeros((0, C))
        out = x.new_zeros((N, C)).index_add(0, token, y * gate[sel, None])
        return out, balance, z

    def forward(self, tokens, targets):
        """tokens, targets: int64 [B,S]. Returns (mean CE, weighted aux, balance sum, z sum)."""
        B, S = tokens.shape
        C = self.shape.d_model
        r = self.routing
        self.last_routing = []
        x = self.p["wte"][tokens] + self.p["wpe"][:S]
        aux = balance_sum = z_sum = x.new_zeros(())
        for layer in range(self.shape.n_layers):
            p = f"layer{layer}."
            x = x + self._attention(self._ln(x, p + "ln1"), p)
            h = self._ln(x, p + "ln2").reshape(B * S, C)
            if block_is_moe(self.shape, layer):
                out, balance, z = self._moe(h, p, layer)
                aux = aux + r.aux_loss_weight * balance + r.z_loss_weight * z
                balance_sum, z_sum = balance_sum + balance, z_sum + z
            else:
                out = self._mlp(h, p, 0)
            x = x + out.view(B, S, C)
        h = self._ln(x, "lnf").reshape(B * S, C)
        logits = h @ self.p["wte"].t()  # tied LM head
        ce = F.cross_entropy(logits, targets.reshape(-1))
        return ce, aux, balance_sum, z_sum
