#!/usr/bin/env python3
"""moe-bench against the PyTorch reference, side by side on the same shapes and cores.

usage: benchmarks/vs_torch.py [--mode reference|study] [--cores 1,2] [--rounds R] [--steps N]
                              [--build DIR] [--mpiexec CMD] [--numproc-flag=F] [--mpi-preflags=S]
                              [--mpi-postflags=S] [--expert-parallel G]
                              [--set section.key=value ...]

Alternates the two (A/B/A/B ..., R rounds, each run one process: a warm-up step that is not
timed, then N timed steps) so both see the same machine state, and prints per configuration the
median (min-max) seconds per step of each and the suite's speed relative to PyTorch
(torch s/step / suite s/step; > 1 means the suite is faster).
  cores 1: moe-bench on 1 rank (its BLAS on 1 thread)  vs  torch with 1 thread
  cores 2: mpiexec -n 2 moe-bench, data parallel        vs  torch with 2 threads
           (--expert-parallel 0: the experts split over the ranks instead)
Modes: reference = moe-bench's reference model; study = the shapes of
studies/scaling_upper_bound.toml (its base, studies/scaling_base.toml: model and batch, top-1,
dropless) at 8 and 64 experts.
--set applies to both sides after the mode's shapes (e.g. smaller shapes for a quick check).
PyTorch comes from scripts/setup_torch.sh (installed on first use). Run it on an idle machine:
both sides are timed on the same cores, so anything else running skews the ratio.
"""

import argparse
import os
import re
import shlex
import statistics
import subprocess
import sys
import tomllib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_PY = os.path.join(REPO, "benchmarks", "torch_reference", "bench.py")

sys.path.insert(0, os.path.join(REPO, "benchmarks", "torch_reference"))
from shapes import REFERENCE  # noqa: E402  (moe-bench's reference shape)


def study_shapes(experts):
    """The study's base model and batch, top-k routing, at the given expert count."""
    # The study's base config (studies/scaling_base.toml, shared with the quick start).
    with open(os.path.join(REPO, "studies", "scaling_base.toml"), "rb") as f:
        base = tomllib.load(f)
    sets = [f"model.{k}={v}" for k, v in base["model"].items()]
    sets += [f"train.batch_size={base['train']['batch_size']}", "router.type=topk",
             "router.capacity_factor=0.0", f"model.num_experts={experts}"]  # fmt: skip
    return sets


def configurations(mode):
    if mode == "reference":
        return [("reference", REFERENCE)]
    return [(f"study E={e}", study_shapes(e)) for e in (8, 64)]


def step_seconds(cmd, env, pattern):
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    m = re.search(pattern, res.stdout)
    if res.returncode != 0 or not m:
        sys.exit(
            f"vs_torch.py: failed ({res.returncode}): {' '.join(cmd)}\n{res.stdout}{res.stderr}"
        )
    return float(m.group(1))


def summary(xs):
    """median (min-max) to 4 significant digits: 7.481 s and 0.01712 s alike."""
    return f"{statistics.median(xs):8.4g} ({min(xs):.4g}-{max(xs):.4g})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=["reference", "study"], default="reference")
    ap.add_argument("--cores", default="1,2", help="comma-separated core counts (1, 2, ...)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=2, help="timed steps per run")
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    # The MPI launcher, as CMake's FindMPI names its pieces; the tests hand them over in the
    # environment (MOE_MPIEXEC*, see tests/e2e/mpi_launch.py). Give values starting with '-'
    # as --numproc-flag=-np.
    env = os.environ.get
    ap.add_argument("--mpiexec", default=env("MOE_MPIEXEC") or "mpiexec")
    ap.add_argument("--numproc-flag", default=env("MOE_MPIEXEC_NUMPROC_FLAG") or "-n")
    ap.add_argument("--mpi-preflags", default=env("MOE_MPIEXEC_PREFLAGS", ""))
    ap.add_argument("--mpi-postflags", default=env("MOE_MPIEXEC_POSTFLAGS", ""))
    ap.add_argument(
        "--expert-parallel",
        type=int,
        default=1,
        help="moe-bench's parallel.expert_parallel at more than one core (1 = data parallel, "
        "0 = experts split over all ranks)",
    )
    ap.add_argument("--set", action="append", default=[], dest="sets")
    args = ap.parse_args()
    try:
        cores = [int(c) for c in args.cores.split(",")]
    except ValueError:
        cores = []
    if not cores or min(cores) < 1 or args.rounds < 1 or args.steps < 1 or args.expert_parallel < 0:
        print(
            "vs_torch.py: --cores needs numbers >= 1, --rounds and --steps >= 1, "
            "--expert-parallel >= 0",
            file=sys.stderr,
        )
        sys.exit(2)
    moe_bench = os.path.join(args.build, "src", "moe-bench")
    if not os.access(moe_bench, os.X_OK):
        print(
            f"vs_torch.py: --build {args.build}: no src/moe-bench there (build first)",
            file=sys.stderr,
        )
        sys.exit(2)
    setup = subprocess.run(["bash", os.path.join(REPO, "scripts", "setup_torch.sh")],
                           capture_output=True, text=True)  # fmt: skip
    if setup.returncode != 0:
        sys.exit(f"vs_torch.py: scripts/setup_torch.sh failed\n{setup.stderr}")
    python = setup.stdout.strip().splitlines()[-1]

    print(f"{'configuration':18s} {'cores':>5s} {'moe-suite s/step':>24s} {'torch s/step':>24s} "
          f"{'suite speed vs torch':>22s}")  # fmt: skip
    for name, shapes in configurations(args.mode):
        sets = sum((["--set", s] for s in shapes + args.sets), [])
        for n in cores:
            env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS=str(n))
            suite_cmd = [moe_bench, *sets, "--steps", str(args.steps)]
            if n > 1:  # data parallel by default (--expert-parallel 1)
                suite_cmd = [
                    *shlex.split(args.mpiexec),
                    args.numproc_flag,
                    str(n),
                    *shlex.split(args.mpi_preflags),
                    moe_bench,
                    *shlex.split(args.mpi_postflags),
                    *suite_cmd[1:],
                    "--set",
                    f"parallel.expert_parallel={args.expert_parallel}",
                ]
            torch_cmd = [python, BENCH_PY, *sets, "--steps", str(args.steps), "--threads", str(n)]
            print(
                f"# {name}, {n} core(s): {' '.join(suite_cmd)}\n#   vs {' '.join(torch_cmd)}",
                flush=True,
            )
            suite, torch = [], []
            for r in range(args.rounds):
                # A/B, then B/A in the next round: neither side always runs first.
                order = [("suite", suite_cmd), ("torch", torch_cmd)]
                for side, cmd in order if r % 2 == 0 else order[::-1]:
                    (suite if side == "suite" else torch).append(
                        step_seconds(cmd, env, r"step_s=([0-9.eE+-]+)")
                    )
            if min(suite + torch) <= 0:
                sys.exit(f"vs_torch.py: {name}: a step time of 0 s; use more --steps or larger shapes")
            ratio = statistics.median(torch) / statistics.median(suite)
            print(
                f"{name:18s} {n:5d} {summary(suite):>24s} {summary(torch):>24s} {ratio:21.2f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()
