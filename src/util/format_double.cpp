#include "util/format_double.hpp"

#include <charconv>
#include <cmath>

namespace moe {

std::string shortest_double(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  (void)ec;  // 32 bytes hold any double's shortest form (at most 24 characters)
  return std::string(buf, end);
}

}  // namespace moe
