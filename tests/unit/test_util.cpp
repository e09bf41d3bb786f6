// src/util: whole-string number parsing of user input (checked_parse), the shortest round-trip
// double text (format_double) and UserError's one line.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>

#include "util/checked_parse.hpp"
#include "util/format_double.hpp"
#include "util/user_error.hpp"

using namespace moe;

namespace {

// The UserError message of parse, after checking it names the input and the rule.
std::string refusal(const std::function<void()>& parse, const std::string& input,
                    const std::string& rule) {
  try {
    parse();
  } catch (const UserError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(input), std::string::npos) << msg;
    EXPECT_NE(msg.find(rule), std::string::npos) << msg;
    return msg;
  }
  ADD_FAILURE() << "no UserError for '" << input << "'";
  return "";
}

}  // namespace

TEST(CheckedParse, IntegersWholeStringAndInRange) {
  EXPECT_EQ(parse_integer("--steps", "42", 1, 100), 42);
  EXPECT_EQ(parse_integer("--n", "+7"), 7);
  EXPECT_EQ(parse_integer("--n", "-9223372036854775808"), std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(refusal([] { parse_integer("--steps", "abc", 1, 100); }, "--steps 'abc'",
                    "(allowed: an integer in 1..100)"),
            "--steps 'abc' (allowed: an integer in 1..100)");
  refusal([] { parse_integer("--steps", "12abc", 1); }, "'12abc'", "an integer >= 1");
  refusal([] { parse_integer("--steps", "0", 1); }, "'0'", "an integer >= 1");
  refusal([] { parse_integer("--steps", "101", 1, 100); }, "'101'", "1..100");
  refusal([] { parse_integer("--steps", "", 1); }, "''", "an integer >= 1");
  refusal([] { parse_integer("--steps", " 5", 1); }, "' 5'", "an integer >= 1");
  refusal([] { parse_integer("--steps", "1.5", 1); }, "'1.5'", "an integer >= 1");
  refusal([] { parse_integer("--n", "9223372036854775808"); }, "9223372036854775808", "an integer");
}

TEST(CheckedParse, NumbersFiniteAndInRange) {
  EXPECT_EQ(parse_number("--f", "2.5", 0), 2.5);
  EXPECT_EQ(parse_number("--f", "1e-3"), 1e-3);
  refusal([] { parse_number("--f", "x", 0); }, "'x'", "a number >= 0");
  refusal([] { parse_number("--f", "-1", 0, 1); }, "'-1'", "a number in [0, 1]");
  refusal([] { parse_number("--f", "nan"); }, "'nan'", "a finite number");
  refusal([] { parse_number("--f", "1e999"); }, "'1e999'", "a finite number");
  refusal([] { parse_number("--f", "2x"); }, "'2x'", "a finite number");
}

// The text is printf's %.<P>g for the smallest P that reads back exactly (what run files and
// study ids always held), written out here for known values and checked by round trip on
// random bit patterns.
TEST(FormatDouble, ShortestRoundTripInPrintfGStyle) {
  EXPECT_EQ(shortest_double(0.001), "0.001");
  EXPECT_EQ(shortest_double(1e-4), "0.0001");
  EXPECT_EQ(shortest_double(1e-5), "1e-05");
  EXPECT_EQ(shortest_double(3.0), "3");
  EXPECT_EQ(shortest_double(100000.0), "1e+05");
  EXPECT_EQ(shortest_double(2147483647.0), "2147483647");
  EXPECT_EQ(shortest_double(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(shortest_double(1e-30), "1e-30");
  EXPECT_EQ(shortest_double(1e30), "1e+30");
  EXPECT_EQ(shortest_double(-2.5), "-2.5");
  EXPECT_EQ(shortest_double(5e-324), "5e-324");
  EXPECT_EQ(shortest_double(std::numeric_limits<double>::infinity()), "inf");
  EXPECT_EQ(shortest_double(std::nan("")), "nan");
  std::mt19937_64 bits(7);
  for (int i = 0; i < 20000; ++i) {
    const std::uint64_t u = bits();
    double v;
    std::memcpy(&v, &u, sizeof v);
    if (!std::isfinite(v)) continue;
    char expected[40];
    for (int digits = 1; digits <= 17; ++digits) {
      std::snprintf(expected, sizeof expected, "%.*g", digits, v);
      if (std::strtod(expected, nullptr) == v) break;
    }
    ASSERT_EQ(shortest_double(v), expected);
  }
}

TEST(UserError, IsOneLine) {
  const UserError e("file 'a\nb': bad\r\nvalue");
  EXPECT_STREQ(e.what(), "file 'a b': bad  value");
}
