// Host-only decisions about devices, made from plain inputs so CPU tests can drive every branch:
// which GPU a rank takes (chosen from the launcher's node-local rank before MPI or CUDA is
// touched) and whether the token exchange may use NCCL (it cannot when two ranks of a group
// share a GPU, or when NCCL's initialisation fails: then MPI carries the exchange, and one line
// says so).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace moe {

// The node-local rank the launcher exported (Open MPI, MPICH/Hydra, MVAPICH, SLURM, PMIx), or
// -1 if none did. `getenv` is injectable for tests.
int local_rank_from_env(const std::function<const char*(const char*)>& getenv);
int local_rank_from_env();

// The device of a node-local rank when the node has `devices` GPUs (round robin).
int device_for_local_rank(int local_rank, int devices);

// parallel.nccl: off (always MPI), auto (NCCL when it can work, MPI with one line otherwise),
// on (NCCL or a one-line error).
enum class NcclMode { Off, Auto, On };
NcclMode parse_nccl_mode(const std::string& s);  // throws std::invalid_argument
const char* to_string(NcclMode m);

// Where one rank of an expert-parallel group runs: a hash of its host name and its GPU.
struct RankDevice {
  std::uint64_t node = 0;
  int device = -1;  // -1: no GPU
};
std::uint64_t node_hash(const std::string& host_name);

struct NcclDecision {
  bool use = false;
  bool error = false;   // mode On and NCCL cannot be used: the run must stop (exit 2)
  std::string message;  // empty, or one line for stderr (said by group rank 0 only)
};

// Before NCCL is initialised: may this group use it at all?
NcclDecision nccl_preflight(bool built_with_nccl, NcclMode mode,
                            const std::vector<RankDevice>& group);
// After ncclCommInitRank returned: `ok` false with NCCL's error string falls back (auto) or
// stops (on).
NcclDecision nccl_after_init(NcclMode mode, bool ok, const std::string& nccl_error);

// The whole decision for one expert-parallel group, as every rank of it takes it: the preflight;
// then, if NCCL may be used, `init` (NCCL's initialisation on this rank: "" on success, else
// NCCL's error) and `all_ok` (true when every rank of the group succeeded: the ranks must take
// the same path; on one rank the identity). Every branch is reachable with plain functions, so
// CPU tests simulate a failing NCCL.
NcclDecision decide_nccl(bool built_with_nccl, NcclMode mode, const std::vector<RankDevice>& group,
                         const std::function<std::string()>& init,
                         const std::function<bool(bool)>& all_ok);

// How MPI reaches device buffers (the gradient sums, the all-gathers): Direct hands MPI the
// device pointer (host backends, whose device memory is host memory, or a GPU-aware MPI);
// Staged copies through one pinned host buffer, reused across calls.
enum class DeviceMpi { Direct, Staged };
struct DeviceMpiDecision {
  DeviceMpi mode = DeviceMpi::Direct;
  std::string reason;  // one phrase, for logs and tests
};
// host_accessible: the execution space's memory is host memory. env: MOE_GPU_AWARE_MPI
// (nullptr or "": ask MPI; "1": trust it to take device pointers; "0": always stage, also on host
// backends, which is how CPU tests run the staged path). mpi_cuda: what the MPI library says
// about CUDA buffers (1 yes, 0 no, -1 it cannot be asked). A bad env value throws UserError.
DeviceMpiDecision decide_device_mpi(bool host_accessible, const char* env, int mpi_cuda);

}  // namespace moe
