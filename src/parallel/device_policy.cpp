#include "parallel/device_policy.hpp"

#include <cstdlib>
#include <map>
#include <stdexcept>

#include "util/rng.hpp"
#include "util/user_error.hpp"

namespace moe {

int local_rank_from_env(const std::function<const char*(const char*)>& getenv) {
  // In order of specificity: a launcher's own variable before the resource manager's.
  static const char* const kNames[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID",
                                       "MV2_COMM_WORLD_LOCAL_RANK",  "PMIX_LOCAL_RANK",
                                       "PALS_LOCAL_RANKID",          "SLURM_LOCALID"};
  for (const char* name : kNames) {
    const char* v = getenv(name);
    if (v == nullptr || *v == '\0') continue;
    char* end = nullptr;
    const long r = std::strtol(v, &end, 10);
    if (*end == '\0' && r >= 0 && r < (1L << 20)) return int(r);
  }
  return -1;
}

int local_rank_from_env() {
  return local_rank_from_env([](const char* n) -> const char* { return std::getenv(n); });
}

int device_for_local_rank(int local_rank, int devices) {
  if (devices <= 0) return -1;
  return (local_rank < 0 ? 0 : local_rank) % devices;
}

NcclMode parse_nccl_mode(const std::string& s) {
  if (s == "off") return NcclMode::Off;
  if (s == "auto") return NcclMode::Auto;
  if (s == "on") return NcclMode::On;
  throw std::invalid_argument("parallel.nccl = \"" + s + "\": allowed are off, auto, on");
}

const char* to_string(NcclMode m) {
  switch (m) {
    case NcclMode::Off:
      return "off";
    case NcclMode::Auto:
      return "auto";
    case NcclMode::On:
      return "on";
  }
  return "?";
}

std::uint64_t node_hash(const std::string& host_name) {
  return fnv1a(host_name);  // stable across ranks and runs
}

namespace {

NcclDecision fallback(NcclMode mode, const std::string& why) {
  NcclDecision d;
  if (mode == NcclMode::On) {
    d.error = true;
    d.message = "parallel.nccl = on, but " + why + " (set parallel.nccl = auto to use MPI)";
  } else {
    d.message = "NCCL not used: " + why + "; the token exchange runs over MPI";
  }
  return d;
}

}  // namespace

NcclDecision nccl_preflight(bool built_with_nccl, NcclMode mode,
                            const std::vector<RankDevice>& group) {
  if (mode == NcclMode::Off) return {};
  if (!built_with_nccl) {
    // auto without NCCL is the ordinary CPU or MPI-only build: nothing to say.
    return mode == NcclMode::On ? fallback(mode,
                                           "this build has no NCCL (MOE_ENABLE_NCCL=OFF "
                                           "or NCCL not found)")
                                : NcclDecision{};
  }
  std::map<std::pair<std::uint64_t, int>, int> first_on;  // (node, device) -> group rank
  for (int r = 0; r < int(group.size()); ++r) {
    if (group[r].device < 0)
      return fallback(mode, "group rank " + std::to_string(r) + " has no GPU");
    const auto key = std::make_pair(group[r].node, group[r].device);
    const auto it = first_on.find(key);
    if (it != first_on.end())
      return fallback(mode, "group ranks " + std::to_string(it->second) + " and " +
                                std::to_string(r) + " share GPU " +
                                std::to_string(group[r].device) + " (NCCL needs one GPU per rank)");
    first_on.emplace(key, r);
  }
  NcclDecision d;
  d.use = true;
  return d;
}

NcclDecision nccl_after_init(NcclMode mode, bool ok, const std::string& nccl_error) {
  if (ok) {
    NcclDecision d;
    d.use = true;
    return d;
  }
  return fallback(mode, "NCCL initialisation failed (" + nccl_error + ")");
}

NcclDecision decide_nccl(bool built_with_nccl, NcclMode mode, const std::vector<RankDevice>& group,
                         const std::function<std::string()>& init,
                         const std::function<bool(bool)>& all_ok) {
  const NcclDecision pre = nccl_preflight(built_with_nccl, mode, group);
  if (!pre.use) return pre;
  const std::string error = init ? init() : std::string("no initialiser");
  const bool ok = all_ok ? all_ok(error.empty()) : error.empty();
  if (ok) return nccl_after_init(mode, true, "");
  return nccl_after_init(mode, false, error.empty() ? "on another rank of the group" : error);
}

DeviceMpiDecision decide_device_mpi(bool host_accessible, const char* env, int mpi_cuda) {
  const std::string e = env ? env : "";
  if (e == "0") return {DeviceMpi::Staged, "MOE_GPU_AWARE_MPI=0"};
  if (!e.empty() && e != "1")
    throw UserError("MOE_GPU_AWARE_MPI is '" + e +
                    "'; allowed: 0 (stage through host memory), "
                    "1 (MPI takes device pointers), or unset (ask MPI)");
  if (host_accessible) return {DeviceMpi::Direct, "device memory is host memory"};
  if (e == "1") return {DeviceMpi::Direct, "MOE_GPU_AWARE_MPI=1"};
  if (mpi_cuda == 1) return {DeviceMpi::Direct, "the MPI library takes CUDA buffers"};
  return {DeviceMpi::Staged, mpi_cuda == 0 ? "the MPI library does not take CUDA buffers"
                                           : "the MPI library cannot be asked about CUDA buffers"};
}

}  // namespace moe
