#include "io/input_file.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "io/posix_file.hpp"
#include "util/user_error.hpp"

namespace moe {

std::string read_input_file(const std::string& path, const std::string& what) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    throw UserError("cannot read " + what + " '" + path + "': " + std::strerror(errno));
  if (S_ISDIR(st.st_mode))
    throw UserError("cannot read " + what + " '" + path + "': it is a directory");
  if (!S_ISREG(st.st_mode))
    throw UserError(what + " '" + path + "' is not a regular file (allowed: a TOML file)");
  if (std::int64_t(st.st_size) > kMaxInputFileBytes)
    throw UserError(what + " '" + path + "' has " + std::to_string(st.st_size) +
                    " bytes (allowed: a TOML file of at most " +
                    std::to_string(kMaxInputFileBytes >> 20) + " MiB)");
  try {
    return read_file_bytes(path);
  } catch (const std::exception& e) {
    throw UserError(what + ": " + e.what());
  }
}

}  // namespace moe
