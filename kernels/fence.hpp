// A host-blocking synchronisation with a name: waits for every kernel and copy issued so far,
// and reports itself to Kokkos Tools (begin/end fence) so that profiling tools, such as the
// suite's counter (src/profiling/kokkos_counters.cpp), count it. Kokkos >= 3.5 reports named
// fences itself; Kokkos 3.4 emits no fence events, so the event is reported here. Every fence
// of the training step goes through this function: a GPU pays each one as an idle device.
#pragma once

#include <Kokkos_Core.hpp>
#include <cstdint>

namespace moe {

inline void fence(const char* label) {
#if KOKKOS_VERSION >= 30500
  Kokkos::fence(label);
#else
  const bool tool = Kokkos::Tools::profileLibraryLoaded();
  std::uint64_t id = 0;
  if (tool) Kokkos::Tools::beginFence(label, 0, &id);
  Kokkos::fence();
  if (tool) Kokkos::Tools::endFence(id);
#endif
}

}  // namespace moe
