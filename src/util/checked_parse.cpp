#include "util/checked_parse.hpp"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "util/format_double.hpp"
#include "util/user_error.hpp"

namespace moe {

namespace {

constexpr std::int64_t kMinInt = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t kMaxInt = std::numeric_limits<std::int64_t>::max();
constexpr double kMaxDouble = std::numeric_limits<double>::max();

[[noreturn]] void refuse(const std::string& what, const std::string& text,
                         const std::string& rule) {
  throw UserError(what + " '" + text + "' (allowed: " + rule + ")");
}

}  // namespace

std::string integer_rule(std::int64_t lo, std::int64_t hi) {
  if (lo == kMinInt && hi == kMaxInt) return "an integer";
  if (hi == kMaxInt) return "an integer >= " + std::to_string(lo);
  if (lo == kMinInt) return "an integer <= " + std::to_string(hi);
  return "an integer in " + std::to_string(lo) + ".." + std::to_string(hi);
}

std::string number_rule(double lo, double hi) {
  if (lo <= -kMaxDouble && hi >= kMaxDouble) return "a finite number";
  if (hi >= kMaxDouble) return "a number >= " + shortest_double(lo);
  if (lo <= -kMaxDouble) return "a number <= " + shortest_double(hi);
  return "a number in [" + shortest_double(lo) + ", " + shortest_double(hi) + "]";
}

std::int64_t parse_integer(const std::string& what, const std::string& text, std::int64_t lo,
                           std::int64_t hi) {
  // strtoll rather than from_chars: it also takes a leading '+'; leading blanks are refused.
  const char* begin = text.c_str();
  char* end = nullptr;
  errno = 0;
  const long long v = text.empty() || std::isspace(static_cast<unsigned char>(text[0]))
                          ? 0
                          : std::strtoll(begin, &end, 10);
  if (end == nullptr || end == begin || *end != '\0' || errno == ERANGE || v < lo || v > hi)
    refuse(what, text, integer_rule(lo, hi));
  return v;
}

double parse_number(const std::string& what, const std::string& text, double lo, double hi) {
  const char* begin = text.c_str();
  char* end = nullptr;
  const double v = text.empty() || std::isspace(static_cast<unsigned char>(text[0]))
                       ? 0
                       : std::strtod(begin, &end);
  if (end == nullptr || end == begin || *end != '\0' || !std::isfinite(v) || v < lo || v > hi)
    refuse(what, text, number_rule(lo, hi));
  return v;
}

}  // namespace moe
