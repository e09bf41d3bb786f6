#include "io/posix_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace moe {

namespace {

std::runtime_error os_failure(const std::string& what, const std::string& path, int err) {
  return std::runtime_error(what + " '" + path + "': " + std::strerror(err));
}

void write_all(int fd, const std::string& bytes, const std::string& path) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw os_failure("cannot write", path, errno);
    done += std::size_t(n);
  }
}

}  // namespace

FileDescriptor& FileDescriptor::operator=(FileDescriptor&& o) noexcept {
  if (this != &o) {
    reset();
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

void FileDescriptor::reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

std::string temporary_name(const std::string& path) {
  return path + ".tmp." + std::to_string(::getpid());
}

std::string read_file_bytes(const std::string& path) {
  const FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) throw os_failure("cannot read", path, errno);
  std::string out;
  char buf[1 << 16];
  while (true) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw os_failure("cannot read", path, errno);
    if (n == 0) break;
    out.append(buf, std::size_t(n));
  }
  return out;
}

void replace_file(const std::string& path, const std::string& bytes) {
  const std::string tmp = temporary_name(path);
  try {
    {
      const FileDescriptor fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
      if (!fd.valid()) throw os_failure("cannot create", tmp, errno);
      write_all(fd.get(), bytes, tmp);
      if (::fsync(fd.get()) != 0) throw os_failure("cannot write", tmp, errno);
    }
    rename_durably(tmp, path);
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
}

void sync_file(const std::string& path) {
  const FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid() || ::fsync(fd.get()) != 0) throw os_failure("cannot write", path, errno);
}

void sync_parent_directory(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  const FileDescriptor fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  // Some file systems refuse fsync on directories (EINVAL); the rename itself stands.
  if (fd.valid() && ::fsync(fd.get()) != 0 && errno != EINVAL)
    throw os_failure("cannot write directory", dir, errno);
}

void rename_durably(const std::string& from, const std::string& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0)
    throw std::runtime_error("cannot rename '" + from + "' to '" + to +
                             "': " + std::strerror(errno));
  sync_parent_directory(to);
}

}  // namespace moe
