// Scratch buffers that grow to the largest size asked for and are then reused, so steady-state
// steps allocate nothing.
#pragma once

#include <string>

#include "common.hpp"

namespace moe {

// Makes `b` hold at least n elements (contents not kept when it grows) and returns its first n.
template <class T>
View1<T> ensure(Buffer<T>& b, Index n, const char* label) {
  if (Index(b.extent(0)) < n) b = Buffer<T>(std::string(label), std::size_t(n));
  return slice(b, 0, n);
}

}  // namespace moe
