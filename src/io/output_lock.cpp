#include "io/output_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace moe {

namespace fs = std::filesystem;

std::string lock_path(const std::string& output) {
  return output + ".lock";
}

OutputLock::OutputLock(const std::string& output) {
  const std::string path = lock_path(output);
  fd_ = FileDescriptor(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd_.valid())
    throw std::runtime_error("cannot create the lock file '" + path + "' of output '" + output +
                             "': " + std::strerror(errno));
  if (::flock(fd_.get(), LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err != EWOULDBLOCK)
      throw std::runtime_error("cannot lock '" + path + "': " + std::strerror(err));
    char owner[128] = {0};
    const ssize_t n = ::pread(fd_.get(), owner, sizeof owner - 1, 0);
    std::string who = n > 0 ? std::string(owner, std::size_t(n)) : std::string();
    while (!who.empty() && (who.back() == '\n' || who.back() == ' ')) who.pop_back();
    throw std::runtime_error("output '" + output + "' is in use by another run" +
                             (who.empty() ? std::string() : " (" + who + ")") + "; its lock '" +
                             path + "' is held (allowed: another --output)");
  }
  // Who holds it, for the message a second run prints.
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  const std::string me = "process " + std::to_string(::getpid()) + " on " + host + "\n";
  if (::ftruncate(fd_.get(), 0) == 0) {
    const ssize_t w = ::pwrite(fd_.get(), me.data(), me.size(), 0);
    (void)w;  // the note is informative only; the lock is what matters
  }
}

bool same_file(const std::string& a, const std::string& b) {
  std::error_code ec1, ec2;
  if (fs::exists(a, ec1) && fs::exists(b, ec2)) {
    std::error_code ec;
    const bool same = fs::equivalent(a, b, ec);
    if (!ec) return same;
  }
  std::error_code ec;
  const fs::path pa = fs::weakly_canonical(fs::absolute(a), ec);
  const fs::path pb = fs::weakly_canonical(fs::absolute(b), ec);
  return pa == pb;
}

}  // namespace moe
