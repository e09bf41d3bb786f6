// A Kokkos Tools library that counts, per training step, what costs a GPU its time outside the
// FLOPs: kernel launches, fences, deep copies and reductions (a reduction into a host scalar
// blocks the host like a fence). It uses only the C hooks every Kokkos since 3.x calls, so the
// same counts come from the Serial build here and from a CUDA build on a cluster.
//
// Load it with KOKKOS_PROFILE_LIBRARY=/path/libmoe_kokkos_counters.so (Kokkos 3.x) or
// KOKKOS_TOOLS_LIBS=... (4.x/5.x). A "step" is one instance of the profiling region named by
// MOE_COUNTERS_REGION (default "moe::step", pushed by the trainer around each training step);
// events outside every instance of it are counted apart. At finalize it writes one line of
// key=value pairs to the file MOE_COUNTERS_OUT (appended) or to stderr:
//   kokkos_counters: steps=S launches=L fences=F deep_copies=D reduces=R host_syncs=H
//   (each a mean per step) and the same totals outside steps.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

// Kokkos passes memory spaces by value as this struct (Kokkos_Profiling_SpaceHandle).
struct SpaceHandle {
  char name[64];
};

struct Counts {
  std::uint64_t launches = 0, fences = 0, deep_copies = 0, to_host_copies = 0, reduces = 0;
};

std::string g_region = "moe::step";
int g_depth = 0;         // nesting depth of the step region (0: outside a step)
int g_region_stack = 0;  // depth of all regions, to match pops to the step region's push
int g_step_level = -1;   // g_region_stack value at which the current step was pushed
std::uint64_t g_steps = 0;
Counts g_in, g_out;
std::uint64_t g_next_id = 0;

Counts& current() {
  return g_depth > 0 ? g_in : g_out;
}

bool is_host_space(const SpaceHandle& s) {
  return std::strcmp(s.name, "Host") == 0 || std::strcmp(s.name, "HostSpace") == 0 ||
         std::strstr(s.name, "HostPinned") != nullptr;
}

double per_step(std::uint64_t n) {
  return g_steps ? double(n) / double(g_steps) : 0.0;
}

// A host-blocking synchronisation: a fence, a copy whose destination the host reads, or a
// reduction whose result the host reads. Counting every reduction is conservative (one into a
// device View does not block), which is the right side to err on for a budget.
std::uint64_t host_syncs(const Counts& c) {
  return c.fences + c.to_host_copies + c.reduces;
}

}  // namespace

extern "C" {

void kokkosp_init_library(const int, const std::uint64_t, const std::uint32_t, void*) {
  if (const char* r = std::getenv("MOE_COUNTERS_REGION")) g_region = r;
}

void kokkosp_finalize_library() {
  FILE* f = stderr;
  const char* path = std::getenv("MOE_COUNTERS_OUT");
  if (path && *path) f = std::fopen(path, "a");
  if (!f) f = stderr;
  std::fprintf(f,
               "kokkos_counters: steps=%llu launches=%.2f fences=%.2f deep_copies=%.2f "
               "reduces=%.2f host_syncs=%.2f outside_launches=%llu outside_fences=%llu "
               "outside_deep_copies=%llu\n",
               static_cast<unsigned long long>(g_steps), per_step(g_in.launches),
               per_step(g_in.fences), per_step(g_in.deep_copies), per_step(g_in.reduces),
               per_step(host_syncs(g_in)), static_cast<unsigned long long>(g_out.launches),
               static_cast<unsigned long long>(g_out.fences),
               static_cast<unsigned long long>(g_out.deep_copies));
  if (f != stderr) std::fclose(f);
}

void kokkosp_begin_parallel_for(const char*, const std::uint32_t, std::uint64_t* id) {
  ++current().launches;
  *id = g_next_id++;
}
void kokkosp_end_parallel_for(const std::uint64_t) {}

void kokkosp_begin_parallel_scan(const char*, const std::uint32_t, std::uint64_t* id) {
  ++current().launches;
  *id = g_next_id++;
}
void kokkosp_end_parallel_scan(const std::uint64_t) {}

void kokkosp_begin_parallel_reduce(const char*, const std::uint32_t, std::uint64_t* id) {
  ++current().launches;
  ++current().reduces;
  *id = g_next_id++;
}
void kokkosp_end_parallel_reduce(const std::uint64_t) {}

void kokkosp_begin_fence(const char*, const std::uint32_t, std::uint64_t* id) {
  ++current().fences;
  *id = g_next_id++;
}
void kokkosp_end_fence(const std::uint64_t) {}

void kokkosp_begin_deep_copy(SpaceHandle dst, const char*, const void*, SpaceHandle, const char*,
                             const void*, const std::uint64_t) {
  ++current().deep_copies;
  if (is_host_space(dst)) ++current().to_host_copies;
}
void kokkosp_end_deep_copy() {}

void kokkosp_push_profile_region(const char* name) {
  ++g_region_stack;
  if (g_depth == 0 && g_region == name) {
    g_depth = 1;
    g_step_level = g_region_stack;
    ++g_steps;
  }
}

void kokkosp_pop_profile_region() {
  if (g_depth > 0 && g_region_stack == g_step_level) {
    g_depth = 0;
    g_step_level = -1;
  }
  --g_region_stack;
}

}  // extern "C"
