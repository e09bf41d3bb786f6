#pragma once

namespace moe {
const char* suite_version();  // e.g. "0.1.0"
const char* git_commit();     // short hash of the source tree at configure time
}  // namespace moe
