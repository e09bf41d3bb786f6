#include "programs/bench_counters.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace moe {
namespace {

const char* const kLibrary = "libmoe_kokkos_counters.so";

// The directory of this executable ("" when /proc does not say).
std::string exe_dir() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  const std::string path(buf, std::size_t(n));
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? "" : path.substr(0, slash);
}

// The tool library Kokkos loads: KOKKOS_TOOLS_LIBS (4.x; the first of a ';' list) or
// KOKKOS_PROFILE_LIBRARY (3.x).
std::string tool_library() {
  for (const char* var : {"KOKKOS_TOOLS_LIBS", "KOKKOS_PROFILE_LIBRARY"}) {
    const char* v = std::getenv(var);
    if (v && *v) {
      const std::string s(v);
      return s.substr(0, s.find(';'));
    }
  }
  return "";
}

}  // namespace

bool request_counters() {
  if (!tool_library().empty()) return true;
  const std::string lib = exe_dir() + "/" + kLibrary;
  if (access(lib.c_str(), R_OK) != 0) return false;
  setenv("KOKKOS_PROFILE_LIBRARY", lib.c_str(), 1);
  setenv("KOKKOS_TOOLS_LIBS", lib.c_str(), 1);
  // moe-bench prints the figures itself: the library's own line at exit only when asked for.
  if (!std::getenv("MOE_COUNTERS_OUT")) setenv("MOE_COUNTERS_OUT", "/dev/null", 1);
  return true;
}

CounterTotals read_counters() {
  CounterTotals t;
  const std::string lib = tool_library();
  if (lib.empty()) return t;
  // Only a library Kokkos has loaded already (RTLD_NOLOAD); the handle adds a reference.
  void* handle = dlopen(lib.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (!handle) return t;
  using Totals = void (*)(std::uint64_t*);
  const auto fn = reinterpret_cast<Totals>(dlsym(handle, "moe_counters_totals"));
  if (fn) {
    std::uint64_t v[6] = {};
    fn(v);
    t = CounterTotals{true, v[0], v[1], v[2], v[3], v[4], v[5]};
  }
  dlclose(handle);
  return t;
}

}  // namespace moe
