"""Training-step time of the PyTorch reference, the counterpart of `moe-bench`.

usage: bench.py [--set section.key=value ...] [--steps N] [--threads T]

Builds moe-bench's reference model (d_model 512, d_ff 2048, 8 experts top-2, seq_len 256,
4 layers, 8 heads, vocab 8192, 16 sequences) with the given overrides, initialised as the suite
does, and trains it in float32 eager mode on random token batches: one warm-up step, then N
timed steps. Prints one line: step_s=<mean seconds per timed step> threads=T params=P.
Bad input: one line on stderr, exit 2.
"""

import argparse
import os
import sys
import time
import tomllib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from shapes import REFERENCE  # noqa: E402  (the overrides moe-bench starts from)


def parse_sets(sets):
    """'section.key=value' strings (TOML values; a bare word is a string) -> nested dict."""
    cfg = {}
    for s in sets:
        key, sep, value = s.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot or not name:
            raise ValueError(f"--set {s!r}: expected section.key=value")
        try:
            v = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            v = value
        cfg.setdefault(section, {})[name] = v
    return cfg


def check_keys(cfg, ref, train):
    """Refuses keys this model does not read (data.*, output.* and parallel.* do not apply)."""
    known = {
        "model": set(ref.Shape.__dataclass_fields__),
        "router": set(ref.Routing.__dataclass_fields__) | {"type", "jitter_noise"},
        "train": set(train.Training.__dataclass_fields__) | {"eval_every", "eval_batches"},
    }
    for section, values in cfg.items():
        if section in ("data", "output", "parallel"):
            continue
        if section not in known:
            raise ValueError(f"--set {section}.*: unknown section (allowed: {', '.join(known)})")
        for key in values:
            if key not in known[section]:
                raise ValueError(
                    f"--set {section}.{key}: not a key this model reads "
                    f"(allowed: {', '.join(sorted(known[section]))})"
                )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    try:
        if args.steps < 1 or args.threads < 1:
            raise ValueError("--steps and --threads must be >= 1")
        cfg = parse_sets(REFERENCE + args.sets)
        import model as ref
        import train

        check_keys(cfg, ref, train)
        shape, routing = ref.from_config(cfg)
        training = train.training_from_config(cfg)
    except (ValueError, TypeError) as e:
        print(f"bench.py: {e}", file=sys.stderr)
        sys.exit(2)

    import torch

    torch.set_num_threads(args.threads)
    net = ref.MoEModel(shape, routing, ref.init_params(shape, training.seed, torch.float32))
    trainer = train.Trainer(net, training)
    gen = torch.Generator().manual_seed(training.seed)
    B, S = training.batch_size, shape.seq_len

    def batch():
        x = torch.randint(0, shape.vocab_size, (B, S + 1), generator=gen)
        return x[:, :-1], x[:, 1:]

    trainer.step(0, *batch())  # warm-up: allocations, thread pool start
    elapsed = 0.0
    for s in range(1, args.steps + 1):
        tokens, targets = batch()
        t0 = time.perf_counter()
        trainer.step(s, tokens, targets)
        elapsed += time.perf_counter() - t0
    n = sum(p.numel() for p in net.parameters())
    print(f"step_s={elapsed / args.steps:.6f} threads={torch.get_num_threads()} params={n}")


if __name__ == "__main__":
    main()
