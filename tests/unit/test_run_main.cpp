// src/programs' shared pieces: run_main maps what a program throws to one stderr line and its
// exit code; parse_command_line turns every CLI11 error into one UserError line and --help into
// "do not run".
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "programs/command_line.hpp"
#include "programs/run_main.hpp"
#include "util/user_error.hpp"

using namespace moe;

namespace {

struct Outcome {
  int code;
  std::string err;
};

Outcome run_captured(const std::function<int()>& body) {
  ::testing::internal::CaptureStderr();
  const int code = run_main("prog", body);
  return {code, ::testing::internal::GetCapturedStderr()};
}

// parse_command_line on a fresh app with --steps (1..100), --set (repeatable) and --flag.
struct Parsed {
  int steps = 3;
  std::vector<std::string> sets;
  std::string config;
  bool run = false;
};

Parsed parse(std::vector<std::string> args) {
  Parsed p;
  CLI::App app("test program", "prog");
  add_integer(app, "--steps", p.steps, 1, 100, "steps");
  add_config_options(app, p.config, p.sets);
  args.insert(args.begin(), "prog");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  ::testing::internal::CaptureStdout();  // --help prints there
  try {
    p.run = parse_command_line(app, int(argv.size()), argv.data(), true);
  } catch (...) {
    ::testing::internal::GetCapturedStdout();
    throw;
  }
  ::testing::internal::GetCapturedStdout();
  return p;
}

std::string parse_error(const std::vector<std::string>& args) {
  try {
    parse(args);
  } catch (const UserError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    return msg;
  }
  ADD_FAILURE() << "no UserError";
  return "";
}

}  // namespace

TEST(RunMain, ExitCodesAndOneLine) {
  EXPECT_EQ(run_captured([] { return 0; }).code, 0);
  EXPECT_EQ(run_captured([] { return 1; }).code, 1);
  const Outcome user = run_captured([]() -> int { throw UserError("--steps 'x' (allowed: 1)"); });
  EXPECT_EQ(user.code, 2);
  EXPECT_EQ(user.err, "prog: --steps 'x' (allowed: 1)\n");
  const Outcome oom = run_captured([]() -> int { throw std::bad_alloc(); });
  EXPECT_EQ(oom.code, 1);
  EXPECT_EQ(oom.err.rfind("prog: out of memory (", 0), 0u) << oom.err;
  const Outcome internal = run_captured([]() -> int { throw std::logic_error("a\nb"); });
  EXPECT_EQ(internal.code, 1);
  EXPECT_EQ(internal.err, "prog: internal error: a b\n");
  EXPECT_EQ(run_captured([]() -> int { throw 42; }).code, 1);
}

TEST(CommandLine, ValuesAndRepeatedSet) {
  const Parsed p = parse({"--steps", "7", "--set", "a.b=1", "--set=c.d=2", "--config", "f.toml",
                          "--kokkos-threads=2"});
  EXPECT_TRUE(p.run);
  EXPECT_EQ(p.steps, 7);
  EXPECT_EQ(p.sets, (std::vector<std::string>{"a.b=1", "c.d=2"}));
  EXPECT_EQ(p.config, "f.toml");
  EXPECT_EQ(parse({}).steps, 3);  // the default when absent
  EXPECT_FALSE(parse({"--help"}).run);
}

TEST(CommandLine, EveryBadArgumentIsOneLineNamingTheOption) {
  EXPECT_EQ(parse_error({"--steps", "abc"}), "--steps 'abc' (allowed: an integer in 1..100)");
  EXPECT_EQ(parse_error({"--steps", "101"}), "--steps '101' (allowed: an integer in 1..100)");
  EXPECT_NE(parse_error({"--bogus"}).find("--bogus"), std::string::npos);
  EXPECT_NE(parse_error({"--steps"}).find("--steps"), std::string::npos);
  EXPECT_NE(parse_error({"--config", ""}).find("--config is empty"), std::string::npos);
  EXPECT_NE(parse_error({"extra"}).find("extra"), std::string::npos);
}
