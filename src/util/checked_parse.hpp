// Whole-string number parsing for user input (command-line values, cache metadata): no partial
// reads ("12abc"), no silent wrap-around, no "stoi" reaching the user. Failures throw UserError
// naming the input and the allowed range.
#pragma once

#include <cstdint>
#include <limits>
#include <string>

namespace moe {

// text as a decimal integer in [lo, hi]. what names the input, e.g. "--steps".
std::int64_t parse_integer(const std::string& what, const std::string& text,
                           std::int64_t lo = std::numeric_limits<std::int64_t>::min(),
                           std::int64_t hi = std::numeric_limits<std::int64_t>::max());

// text as a finite decimal number in [lo, hi].
double parse_number(const std::string& what, const std::string& text,
                    double lo = -std::numeric_limits<double>::max(),
                    double hi = std::numeric_limits<double>::max());

// "an integer >= 1", "an integer in 0..7": the allowed values, for messages and --help.
std::string integer_rule(std::int64_t lo, std::int64_t hi);
std::string number_rule(double lo, double hi);

}  // namespace moe
