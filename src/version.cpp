// Build identity, baked in by CMake, recorded in every run file.
#include "version.hpp"

namespace moe {
const char* suite_version() {
  return MOE_VERSION;
}
const char* git_commit() {
  return MOE_GIT_COMMIT;
}
}  // namespace moe
