#include "util/format_double.hpp"

#include <charconv>
#include <cmath>

namespace moe {

std::string shortest_double(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  // The fewest significant digits that read back as v, from the shortest scientific form...
  char buf[40];
  char* end = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific).ptr;
  int digits = 0;
  for (const char* c = buf; c != end && *c != 'e'; ++c) digits += *c >= '0' && *c <= '9';
  // ...then printed as printf's %.<digits>g would ("0.0001", "1e-05", "2147483647"), the form
  // run files and study ids have always used. Rounding to that many digits can miss v by one
  // digit next to a power of two, hence the check.
  for (;; ++digits) {
    end = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general, digits).ptr;
    double back = 0;
    std::from_chars(buf, end, back);
    if (back == v || digits >= 17) return std::string(buf, end);
  }
}

}  // namespace moe
