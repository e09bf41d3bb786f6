// POSIX file helpers for files others rely on: an owning file descriptor, whole-file reads,
// and replacement through a temporary file that is written, fsync'ed and renamed over the
// target, so a reader (or a process killed at any instant) sees the old bytes or the new ones.
// Errors throw std::runtime_error in one line naming the file and the OS error.
#pragma once

#include <string>

namespace moe {

// Owns a file descriptor; closes it when it goes out of scope.
class FileDescriptor {
 public:
  FileDescriptor() = default;
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() { reset(); }
  FileDescriptor(FileDescriptor&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  FileDescriptor& operator=(FileDescriptor&& o) noexcept;
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void reset();

 private:
  int fd_ = -1;
};

// "<path>.tmp.<pid>": a name beside `path` (so rename is atomic) no other process uses.
std::string temporary_name(const std::string& path);

// The whole file. Throws naming the file.
std::string read_file_bytes(const std::string& path);

// Writes `bytes` to a temporary file beside `path`, fsyncs it, renames it over `path` and
// fsyncs the directory. On failure the temporary file is removed and `path` is untouched.
void replace_file(const std::string& path, const std::string& bytes);

// fsync of a file, and of the directory holding `path` (makes a rename durable).
void sync_file(const std::string& path);
void sync_parent_directory(const std::string& path);

// Moves `from` over `to` (rename(2)), then syncs the directory. Throws naming both.
void rename_durably(const std::string& from, const std::string& to);

}  // namespace moe
