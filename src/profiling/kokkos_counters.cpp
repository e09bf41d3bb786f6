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
//   (each a mean per step) and the same totals outside steps. Fences are those Kokkos reports
//   (>= 3.5) and those moe::fence (kernels/fence.hpp) reports on 3.4. With MOE_COUNTERS_DETAIL=1
//   it adds one "kokkos_counters_detail: N kind label" line per label (N per step), to find
//   where the launches and syncs come from.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

namespace {

// Kokkos passes memory spaces by value as this struct (Kokkos_Profiling_SpaceHandle).
struct SpaceHandle {
  char name[64];
};

struct Counts {
  std::uint64_t launches = 0, fences = 0, deep_copies = 0, reduces = 0;
};

std::string g_region = "moe::step";
int g_depth = 0;         // nesting depth of the step region (0: outside a step)
int g_region_stack = 0;  // depth of all regions, to match pops to the step region's push
int g_step_level = -1;   // g_region_stack value at which the current step was pushed
std::uint64_t g_steps = 0;
Counts g_in, g_out;
std::uint64_t g_next_id = 0;
// With MOE_COUNTERS_DETAIL set: per label, the events inside steps ("kind label" -> count).
bool g_detail = false;
std::map<std::string, std::uint64_t> g_labels;

void note(const char* kind, const char* label) {
  if (g_detail && g_depth > 0) ++g_labels[std::string(kind) + " " + (label ? label : "")];
}

Counts& current() {
  return g_depth > 0 ? g_in : g_out;
}

double per_step(std::uint64_t n) {
  return g_steps ? double(n) / double(g_steps) : 0.0;
}

// A host-blocking synchronisation: a fence, a deep copy (Kokkos::deep_copy without an
// execution space fences the device before and after, whichever way it copies), or a reduction
// whose result the host reads. Counting every reduction is conservative (one into a device View
// does not block), which is the right side to err on for a budget.
std::uint64_t host_syncs(const Counts& c) {
  return c.fences + c.deep_copies + c.reduces;
}

// Kokkos >= 3.5 reports the fences inside deep_copy and a reduction into a host value as fence
// events of their own; those are counted once, as the copy or the reduction.
bool is_internal_fence(const char* name) {
  return name && (std::strncmp(name, "Kokkos::deep_copy", 17) == 0 ||
                  std::strncmp(name, "Kokkos::parallel_reduce", 23) == 0 ||
                  std::strncmp(name, "Kokkos::Impl::ParallelReduce", 28) == 0);
}

}  // namespace

extern "C" {

// For a program that loaded this library (moe-bench finds it with dlopen(RTLD_NOLOAD) + dlsym):
// totals inside step regions so far, out[0..4] = steps, launches, fences, deep copies,
// reductions, out[5] = host syncs. Differences of two calls give the figures of the steps
// between them.
void moe_counters_totals(std::uint64_t out[6]) {
  out[0] = g_steps;
  out[1] = g_in.launches;
  out[2] = g_in.fences;
  out[3] = g_in.deep_copies;
  out[4] = g_in.reduces;
  out[5] = host_syncs(g_in);
}

void kokkosp_init_library(const int, const std::uint64_t, const std::uint32_t, void*) {
  if (const char* r = std::getenv("MOE_COUNTERS_REGION")) g_region = r;
  const char* d = std::getenv("MOE_COUNTERS_DETAIL");
  g_detail = d && *d && std::strcmp(d, "0") != 0;
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
  for (const auto& [label, n] : g_labels)
    std::fprintf(f, "kokkos_counters_detail: %.2f %s\n", per_step(n), label.c_str());
  if (f != stderr) std::fclose(f);
}

void kokkosp_begin_parallel_for(const char* name, const std::uint32_t, std::uint64_t* id) {
  ++current().launches;
  note("for", name);
  *id = g_next_id++;
}
void kokkosp_end_parallel_for(const std::uint64_t) {}

void kokkosp_begin_parallel_scan(const char* name, const std::uint32_t, std::uint64_t* id) {
  ++current().launches;
  note("scan", name);
  *id = g_next_id++;
}
void kokkosp_end_parallel_scan(const std::uint64_t) {}

void kokkosp_begin_parallel_reduce(const char* name, const std::uint32_t, std::uint64_t* id) {
  ++current().launches;
  ++current().reduces;
  note("reduce", name);
  *id = g_next_id++;
}
void kokkosp_end_parallel_reduce(const std::uint64_t) {}

void kokkosp_begin_fence(const char* name, const std::uint32_t, std::uint64_t* id) {
  *id = g_next_id++;
  if (is_internal_fence(name)) return;
  ++current().fences;
}
void kokkosp_end_fence(const std::uint64_t) {}

void kokkosp_begin_deep_copy(SpaceHandle dst, const char* dst_label, const void*, SpaceHandle src,
                             const char* src_label, const void*, const std::uint64_t) {
  ++current().deep_copies;
  if (g_detail)
    note("copy",
         (std::string(src.name) + ":" + src_label + " -> " + dst.name + ":" + dst_label).c_str());
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
