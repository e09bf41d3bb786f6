"""How the end-to-end tests start MPI programs: the launcher CMake found (MPIEXEC_EXECUTABLE,
MPIEXEC_NUMPROC_FLAG, MPIEXEC_PREFLAGS, MPIEXEC_POSTFLAGS), handed over by tests/CMakeLists.txt
as MOE_MPIEXEC, MOE_MPIEXEC_NUMPROC_FLAG, MOE_MPIEXEC_PREFLAGS and MOE_MPIEXEC_POSTFLAGS, so a
cluster's launcher (srun, an OpenMPI mpirun with --oversubscribe, ...) is configured once, at
cmake time, as for the MPI unit tests.
"""
import os
import shlex


def _launcher():
    exe = os.environ.get("MOE_MPIEXEC")
    if not exe:
        raise SystemExit("MOE_MPIEXEC is not set: run this test through ctest "
                         "(tests/CMakeLists.txt sets the MPI launcher)")
    flag = os.environ.get("MOE_MPIEXEC_NUMPROC_FLAG", "-n")
    pre = shlex.split(os.environ.get("MOE_MPIEXEC_PREFLAGS", ""))
    post = shlex.split(os.environ.get("MOE_MPIEXEC_POSTFLAGS", ""))
    return exe, flag, pre, post


def mpi_command(ranks, program, *args):
    """The command line that starts `program args...` on `ranks` ranks, in CMake's order:
    EXECUTABLE NUMPROC_FLAG N PREFLAGS program POSTFLAGS args."""
    exe, flag, pre, post = _launcher()
    return [exe, flag, str(ranks), *pre, str(program), *post, *map(str, args)]


def mpmd_command(*parts):
    """One MPI job of several programs (MPMD, "A : B"): each part is (ranks, program, args)."""
    exe, flag, pre, post = _launcher()
    cmd = [exe]
    for i, (ranks, program, args) in enumerate(parts):
        if i:
            cmd.append(":")
        cmd += [flag, str(ranks), *pre, str(program), *post, *map(str, args)]
    return cmd
