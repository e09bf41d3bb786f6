#!/usr/bin/env python3
"""Bitwise comparison of two directories of run files.

    compare_runs.py A_DIR B_DIR [--allow-new]

For every run file (*.h5) present in both directories, every dataset under /train, /eval,
/test, /routing and /trace is compared bit for bit (same shape, same dtype, same bytes: NaN equals
NaN only when the bit patterns agree). Timing datasets differ from run to run and are ignored:
they are listed by IGNORED below and printed. A dataset present in only one of the two files is
an error, except that with --allow-new B may hold datasets A lacks (metrics added since A was
made); they are listed. Exit 0 when everything compared is equal, 1 otherwise, 2 on bad usage.
"""
import argparse
import pathlib
import re
import sys

import h5py
import numpy as np

GROUPS = ("train", "eval", "test", "routing", "trace")
# Wall-clock measurements: tokens per second and the per-phase step times.
IGNORED = (re.compile(r"^train/tokens_per_s$"), re.compile(r"^train/time/"))


def datasets(f):
    """Names of the compared datasets of an open file, and those ignored."""
    kept, ignored = set(), set()

    def visit(name, obj):
        if not isinstance(obj, h5py.Dataset):
            return
        if any(p.search(name) for p in IGNORED):
            ignored.add(name)
        else:
            kept.add(name)

    for g in GROUPS:
        if g in f:
            f[g].visititems(lambda n, o, g=g: visit(f"{g}/{n}", o))
    return kept, ignored


def same_bits(a, b):
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def compare_file(pa, pb, allow_new):
    """Returns (problems, datasets compared, ignored names, names only in B)."""
    problems = []
    with h5py.File(pa, "r") as fa, h5py.File(pb, "r") as fb:
        ka, ia = datasets(fa)
        kb, ib = datasets(fb)
        for name in sorted(ka - kb):
            problems.append(f"{pa.name}: {name} missing in {pb.parent}")
        only_b = sorted(kb - ka)
        if not allow_new:
            for name in only_b:
                problems.append(f"{pa.name}: {name} only in {pb.parent}")
        for name in sorted(ka & kb):
            a, b = fa[name][()], fb[name][()]
            if not same_bits(a, b):
                detail = f"shape {a.shape} vs {b.shape}, dtype {a.dtype} vs {b.dtype}"
                if a.shape == b.shape and a.dtype == b.dtype:
                    diff = np.argwhere(~((a == b) | (np.isnan(a) & np.isnan(b)))
                                       if a.dtype.kind == "f" else a != b)
                    detail = f"first difference at {tuple(diff[0]) if len(diff) else 'bits only'}"
                problems.append(f"{pa.name}: {name} differs ({detail})")
        return problems, len(ka & kb), ia | ib, only_b


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a_dir", type=pathlib.Path)
    ap.add_argument("b_dir", type=pathlib.Path)
    ap.add_argument("--allow-new", action="store_true",
                    help="datasets only in B's files are listed, not errors")
    args = ap.parse_args()
    for d in (args.a_dir, args.b_dir):
        if not d.is_dir():
            print(f"compare_runs: '{d}' is not a directory", file=sys.stderr)
            return 2
    names_a = {p.name for p in args.a_dir.glob("*.h5")}
    names_b = {p.name for p in args.b_dir.glob("*.h5")}
    problems = [f"{n}: only in {args.a_dir}" for n in sorted(names_a - names_b)]
    problems += [f"{n}: only in {args.b_dir}" for n in sorted(names_b - names_a)]
    common = sorted(names_a & names_b)
    if not common:
        problems.append("no run file in common")
    ignored, new, compared = set(), set(), 0
    for n in common:
        p, c, ign, only_b = compare_file(args.a_dir / n, args.b_dir / n, args.allow_new)
        problems += p
        compared += c
        ignored |= ign
        new |= set(only_b)
    print(f"compared {compared} datasets in {len(common)} run files")
    print("ignored (timing): " + (", ".join(sorted(ignored)) or "none"))
    if args.allow_new and new:
        print("only in B (not compared): " + ", ".join(sorted(new)))
    for p in problems:
        print("DIFFERENT: " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
