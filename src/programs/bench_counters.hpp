// moe-bench's view of the suite's Kokkos Tools counter (src/profiling/kokkos_counters.cpp):
// asks for it before Kokkos starts and reads its running totals while the program runs.
#pragma once

#include <cstdint>

namespace moe {

// Before Kokkos is initialised: unless KOKKOS_PROFILE_LIBRARY or KOKKOS_TOOLS_LIBS is set
// already, points both at libmoe_kokkos_counters.so beside this program's executable (the
// build puts it there). Returns false, with nothing set, when that file is not there.
bool request_counters();

// The counter's totals over step regions so far (steps, launches, fences, deep copies,
// reductions, host syncs); `loaded` is false when no counter library is loaded.
struct CounterTotals {
  bool loaded = false;
  std::uint64_t steps = 0, launches = 0, fences = 0, deep_copies = 0, reduces = 0, host_syncs = 0;
};
CounterTotals read_counters();

}  // namespace moe
