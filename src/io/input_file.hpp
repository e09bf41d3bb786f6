// Reading a small text input the user names (a config or study file): it must be a regular
// file of sane size, so /dev/zero, a FIFO or a multi-gigabyte file is refused in one line
// instead of exhausting memory or blocking.
#pragma once

#include <cstdint>
#include <string>

namespace moe {

// Config and study files are a few kilobytes; anything beyond this is not one.
constexpr std::int64_t kMaxInputFileBytes = 16 << 20;

// The whole file. Throws UserError naming `what` (e.g. "config file") and the path: missing,
// unreadable (with the OS error), not a regular file, or larger than kMaxInputFileBytes.
std::string read_input_file(const std::string& path, const std::string& what);

}  // namespace moe
