// Command lines through CLI11, the same way in every program: --help prints the options and
// exits 0; any bad argument (unknown option, missing value, not a number, out of range) is one
// UserError line naming the option and what is allowed, which run_main turns into exit 2.
// Kokkos' own --kokkos-* options are left to Kokkos.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace moe {

// Parses argv into app's options. Returns false when --help was given: the help went to stdout
// (when print_help; under MPI only rank 0 prints) and the program should exit 0.
// Throws UserError for every bad argument.
bool parse_command_line(CLI::App& app, int argc, char** argv, bool print_help = true);

// An integer option in [lo, hi], checked by util/checked_parse ("--steps 'abc' (allowed: an
// integer >= 1)"); value keeps its default when the option is absent.
CLI::Option* add_integer(CLI::App& app, const std::string& name, int& value, std::int64_t lo,
                         std::int64_t hi, const std::string& help);
CLI::Option* add_integer(CLI::App& app, const std::string& name, std::int64_t& value,
                         std::int64_t lo, std::int64_t hi, const std::string& help);

// --config FILE.toml and --set section.key=value (repeatable; later ones win), as moe-train,
// moe-bench and moe-data take them.
void add_config_options(CLI::App& app, std::string& config_path, std::vector<std::string>& sets);

// A string option that must not be empty (a path): "--output is empty (allowed: ...)".
CLI::Option* add_nonempty(CLI::App& app, const std::string& name, std::string& value,
                          const std::string& allowed, const std::string& help);

}  // namespace moe
