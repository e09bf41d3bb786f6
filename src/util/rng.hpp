// Portable, bit-reproducible host randomness. The std:: distributions are implementation-defined
// (libstdc++, libc++ and MSVC draw different numbers from the same engine), so every draw the
// suite depends on (data, batches, initialisation, routing masks) comes from here instead.
// Host only: nothing in this file is meant to run inside a kernel.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <string_view>

namespace moe {

// The splitmix64 finalizer: a bijective 64-bit mixer, so distinct inputs give distinct outputs.
inline std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Mixes two words into one seed, e.g. hash64(seed, step). Not symmetric: hash64(a, b) and
// hash64(b, a) differ. For a fixed a it is a bijection in b, so distinct b never collide.
inline std::uint64_t hash64(std::uint64_t a, std::uint64_t b) {
  return splitmix64(splitmix64(a) ^ b);
}

// FNV-1a over bytes, continuing from `h`. The suite's stable names and keys (parameter-init
// seeds, data-cache keys and checksums, node ids) use the basis kFnvSuiteBasis, one digit short
// of the published 14695981039346656037 (kFnvOffsetBasis); it is kept because parameter
// initialisation and cache keys depend on it. Study point-id hashes use the published basis.
inline constexpr std::uint64_t kFnvSuiteBasis = 1469598103934665603ULL;
inline constexpr std::uint64_t kFnvOffsetBasis = 14695981039346656037ULL;
inline std::uint64_t fnv1a(std::string_view bytes, std::uint64_t h = kFnvSuiteBasis) {
  for (const unsigned char c : bytes) h = (h ^ c) * 1099511628211ULL;
  return h;
}

// xoshiro256** (Blackman & Vigna) with its state filled from a splitmix64 stream of the seed,
// which is the initialisation its authors recommend (never an all-zero state).
class Rng {
 public:
  explicit Rng(std::uint64_t seed) {
    for (int i = 0; i < 4; ++i) s_[i] = splitmix64(seed + std::uint64_t(i) * 0x9e3779b97f4a7c15ULL);
  }

  std::uint64_t next_u64() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, 1): the top 53 bits scaled, so every value is an exact double.
  double uniform() { return double(next_u64() >> 11) * 0x1.0p-53; }

  // Uniform in [0, n); n must be >= 1. Rejection keeps it free of modulo bias: draws at or above
  // the largest multiple of n are redrawn (at most half of them for any n, usually almost none).
  std::uint64_t uniform_int(std::uint64_t n) {
    const std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
    const std::uint64_t limit = max - (max % n + 1) % n;  // draws in [0, limit] are unbiased
    std::uint64_t x = next_u64();
    while (x > limit) x = next_u64();
    return x % n;
  }

  // Standard normal by Box-Muller; each pair of uniforms gives two values, the second cached.
  // Bit-identical wherever libm's log, sin and cos are (glibc on every architecture we use).
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double u1 = 1.0 - uniform();  // in (0, 1], so the log is finite
    const double u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    const double theta = 6.283185307179586 * u2;
    spare_ = r * std::sin(theta);
    has_spare_ = true;
    return r * std::cos(theta);
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

  std::uint64_t s_[4];
  double spare_ = 0.0;
  bool has_spare_ = false;
};

}  // namespace moe
