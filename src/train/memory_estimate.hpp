// Memory a training run needs, estimated from its config before anything is allocated, and
// the memory this process can have, so an impossible config is refused in one line instead of
// failing with std::bad_alloc after minutes (or after the OOM killer).
#pragma once

#include <cstdint>
#include <string>

#include "config/config.hpp"

namespace moe {

struct MemoryEstimate {
  // Bytes per rank. A lower bound: the exact figures of the large buffers (the per-step
  // routing scratch and the libraries' own allocations come on top).
  double parameters = 0;   // parameters and gradients
  double optimizer = 0;    // AdamW moments
  double activations = 0;  // saved activations and backward scratch for one batch
  double buffers = 0;      // host copies for checkpoints and the corpus
  double total() const { return parameters + optimizer + activations + buffers; }
};

// Per rank, for `ranks` data-parallel ranks (each holds batch_size / ranks sequences).
MemoryEstimate estimate_memory(const Config& cfg, int ranks);

struct AvailableMemory {
  double bytes = -1;   // < 0: unknown
  std::string source;  // where the figure comes from (for the message)
};

// Host memory this process may still use: MemAvailable of /proc/meminfo, capped by the cgroup
// limit (v2 memory.max or v1 memory.limit_in_bytes) minus its current usage.
AvailableMemory available_host_memory();
// Free memory of the current Kokkos device (CUDA builds); unknown elsewhere.
AvailableMemory available_device_memory();

// "" when `ranks_here` ranks of this node fit, else one line with the figures.
std::string check_memory(const Config& cfg, int ranks, int ranks_here);

// 3.2e12 -> "2.91 TiB".
std::string human_bytes(double bytes);

}  // namespace moe
