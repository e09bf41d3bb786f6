// Token file writing and memory-mapped reading; see token_file.hpp for the format.
#include "data/token_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "config/config.hpp"
#include "io/posix_file.hpp"

namespace moe {

void write_token_file(const std::string& path, const std::vector<std::int32_t>& ids,
                      int vocab_size) {
  const bool narrow = vocab_size <= 65535;
  std::int32_t header[kTokenFileHeaderInts] = {};
  header[0] = kTokenFileMagic;
  header[1] = narrow ? 1 : 2;
  if (ids.size() > std::size_t(INT32_MAX))
    throw std::runtime_error("cannot write " + path + ": more than 2^31-1 tokens");
  header[2] = std::int32_t(ids.size());
  const std::size_t width = narrow ? sizeof(std::uint16_t) : sizeof(std::uint32_t);
  std::string bytes(sizeof header + ids.size() * width, '\0');
  std::memcpy(&bytes[0], header, sizeof header);
  char* body = &bytes[sizeof header];
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (narrow) {
      const auto id = std::uint16_t(ids[i]);
      std::memcpy(body + i * width, &id, width);
    } else {
      const auto id = std::uint32_t(ids[i]);
      std::memcpy(body + i * width, &id, width);
    }
  }
  replace_file(path, bytes);  // temporary file, fsync, rename: readers see all or nothing
}

void write_file_atomic(const std::string& path, const std::string& text) {
  replace_file(path, text);
}

TokenFile::TokenFile(const std::string& path, int vocab_size) : path_(path) {
  const FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) throw UserError("token file " + path + ": " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
    throw UserError("token file " + path + ": not a regular file");
  const std::size_t bytes = std::size_t(st.st_size);
  const std::size_t header_bytes = kTokenFileHeaderInts * sizeof(std::int32_t);
  if (bytes < header_bytes) {
    throw UserError("token file " + path + " is truncated: " + std::to_string(bytes) +
                    " bytes, shorter than its 1024-byte header");
  }
  map_ = ::mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE, fd.get(), 0);  // outlives the fd
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    throw UserError("token file " + path + ": cannot map: " + std::strerror(errno));
  }
  map_bytes_ = bytes;
  try {
    std::int32_t header[3];
    std::memcpy(header, map_, sizeof header);
    if (header[0] != kTokenFileMagic)
      throw UserError("token file " + path + " has magic " + std::to_string(header[0]) + ", not " +
                      std::to_string(kTokenFileMagic) +
                      " (llm.c format: 256 x int32 header, then the ids)");
    if (header[1] != 1 && header[1] != 2)
      throw UserError("token file " + path + " has version " + std::to_string(header[1]) +
                      " (allowed: 1 = uint16 ids, 2 = uint32 ids)");
    width_ = header[1] == 1 ? 2 : 4;
    count_ = header[2];
    if (count_ < 0)
      throw UserError("token file " + path + " has a negative token count " +
                      std::to_string(count_));
    const std::size_t want = header_bytes + std::size_t(count_) * std::size_t(width_);
    if (bytes < want)
      throw UserError("token file " + path + " is truncated: header says " +
                      std::to_string(count_) + " tokens (" + std::to_string(want) +
                      " bytes), the file has " + std::to_string(bytes) + " bytes");
    if (bytes > want)
      throw UserError("token file " + path + " has " + std::to_string(bytes - want) +
                      " bytes after the " + std::to_string(count_) +
                      " tokens its header announces");
    ids_ = static_cast<const char*>(map_) + header_bytes;
    if (vocab_size > 0) {
      for (std::int64_t i = 0; i < count_; ++i) {
        const std::int32_t id = (*this)[i];
        if (id < 0 || id >= vocab_size)
          throw UserError("token file " + path + ": token " + std::to_string(i) + " is id " +
                          std::to_string(std::uint32_t(id)) +
                          " >= model.vocab_size = " + std::to_string(vocab_size));
      }
    }
  } catch (...) {
    ::munmap(map_, map_bytes_);
    map_ = nullptr;
    throw;
  }
}

TokenFile::~TokenFile() {
  if (map_) ::munmap(map_, map_bytes_);
}

void TokenFile::append_to(std::vector<std::int32_t>& out, std::int64_t begin,
                          std::int64_t end) const {
  out.reserve(out.size() + std::size_t(end - begin));
  for (std::int64_t i = begin; i < end; ++i) out.push_back((*this)[i]);
}

std::vector<std::int32_t> read_token_file(const std::string& path, int vocab_size) {
  const TokenFile file(path, vocab_size);
  std::vector<std::int32_t> ids;
  file.append_to(ids, 0, file.size());
  return ids;
}

}  // namespace moe
