// Ownership of a run's output: an exclusive advisory lock (flock) on the sidecar
// "<output>.lock", taken before anything at the output is opened, truncated or deleted and held
// for the whole run. The OS releases it when the process ends, however it ends (kill -9
// included), so a stale lock never blocks a later run. The sidecar stays in place: deleting it
// while unlocking would let two processes lock two different files of the same name.
#pragma once

#include <string>

#include "io/posix_file.hpp"

namespace moe {

std::string lock_path(const std::string& output);

class OutputLock {
 public:
  // Takes the lock without waiting. Throws std::runtime_error in one line when another
  // process holds it (naming that process when it recorded itself) or when the sidecar
  // cannot be created (e.g. the output's directory does not exist).
  explicit OutputLock(const std::string& output);

 private:
  FileDescriptor fd_;
};

// True when `a` and `b` name the same file (same inode when both exist; else the same
// normalised absolute path).
bool same_file(const std::string& a, const std::string& b);

}  // namespace moe
