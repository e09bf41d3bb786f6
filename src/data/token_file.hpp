// Token files: the binary format of karpathy/llm.c (and nanoGPT-style tooling), so prepared data
// and externally tokenized corpora are interchangeable.
//
// Layout (little-endian):
//   header: 256 x int32
//     header[0] = 20240520 (magic)
//     header[1] = version: 1 = ids stored as uint16, 2 = ids stored as uint32
//     header[2] = number of tokens N
//     header[3..255] = 0 (reserved)
//   body: N ids, 2 bytes each (version 1) or 4 bytes each (version 2)
// The file is exactly 1024 + N * width bytes. The suite writes version 1 whenever
// vocab_size <= 65535 (every id fits in uint16), version 2 otherwise.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace moe {

constexpr std::int32_t kTokenFileMagic = 20240520;
constexpr int kTokenFileHeaderInts = 256;

// Writes `ids` (each in [0, vocab_size)) to `path` atomically: the bytes go to a temporary name
// in the same directory, which is then renamed over `path`, so a reader never sees a partial
// file. Throws std::runtime_error naming the file on I/O errors.
void write_token_file(const std::string& path, const std::vector<std::int32_t>& ids,
                      int vocab_size);

// Read-only memory map of a validated token file. Construction checks the magic, the version,
// the size against header[2], and (when vocab_size > 0) every id < vocab_size; on failure it
// throws UserError with one line naming the file (bad input, not an internal error).
class TokenFile {
 public:
  TokenFile(const std::string& path, int vocab_size);
  ~TokenFile();
  TokenFile(const TokenFile&) = delete;
  TokenFile& operator=(const TokenFile&) = delete;

  std::int64_t size() const { return count_; }
  std::int32_t operator[](std::int64_t i) const {
    return width_ == 2 ? std::int32_t(static_cast<const std::uint16_t*>(ids_)[i])
                       : std::int32_t(static_cast<const std::uint32_t*>(ids_)[i]);
  }
  // Appends ids [begin, end) to `out`.
  void append_to(std::vector<std::int32_t>& out, std::int64_t begin, std::int64_t end) const;

 private:
  std::string path_;
  void* map_ = nullptr;
  std::size_t map_bytes_ = 0;
  const void* ids_ = nullptr;
  int width_ = 2;
  std::int64_t count_ = 0;
};

// The whole file as int32 ids (validated as TokenFile does).
std::vector<std::int32_t> read_token_file(const std::string& path, int vocab_size);

// Writes `text` to `path` atomically (temporary name, then rename).
void write_file_atomic(const std::string& path, const std::string& text);

}  // namespace moe
