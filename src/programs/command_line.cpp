#include "programs/command_line.hpp"

#include <cstdio>
#include <vector>

#include "util/checked_parse.hpp"
#include "util/user_error.hpp"

namespace moe {

namespace {

template <class T>
CLI::Option* add_checked_integer(CLI::App& app, const std::string& name, T& value, std::int64_t lo,
                                 std::int64_t hi, const std::string& help) {
  CLI::Option* opt = app.add_option_function<std::string>(
      name,
      [&value, name, lo, hi](const std::string& text) {
        value = T(parse_integer(name, text, lo, hi));
      },
      help);
  return opt->type_name("INT")
      ->default_str(std::to_string(value))
      ->description(help + " (" + integer_rule(lo, hi) + ")");
}

}  // namespace

bool parse_command_line(CLI::App& app, int argc, char** argv, bool print_help) {
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i)
    if (i == 0 || std::string(argv[i]).rfind("--kokkos-", 0) != 0) args.push_back(argv[i]);
  try {
    app.parse(int(args.size()), args.data());
  } catch (const CLI::CallForHelp&) {
    if (print_help) std::fputs(app.help().c_str(), stdout);
    return false;
  } catch (const CLI::CallForAllHelp&) {
    if (print_help) std::fputs(app.help("", CLI::AppFormatMode::All).c_str(), stdout);
    return false;
  } catch (const CLI::ParseError& e) {
    // CLI11 would print several lines; the user gets one, pointing at --help.
    throw UserError(std::string(e.what()) + " (see " + app.get_name() + " --help)");
  }
  return true;
}

CLI::Option* add_integer(CLI::App& app, const std::string& name, int& value, std::int64_t lo,
                         std::int64_t hi, const std::string& help) {
  return add_checked_integer(app, name, value, lo, hi, help);
}

CLI::Option* add_integer(CLI::App& app, const std::string& name, std::int64_t& value,
                         std::int64_t lo, std::int64_t hi, const std::string& help) {
  return add_checked_integer(app, name, value, lo, hi, help);
}

void add_config_options(CLI::App& app, std::string& config_path, std::vector<std::string>& sets) {
  add_nonempty(app, "--config", config_path, "a TOML file",
               "run configuration (TOML); every key has a default");
  // One value per --set, so that "--set a.b=1 --set c.d=2" and a following option both work.
  app.add_option("--set", sets, "override one config key, e.g. --set model.d_model=256")
      ->type_name("SECTION.KEY=VALUE")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
}

CLI::Option* add_nonempty(CLI::App& app, const std::string& name, std::string& value,
                          const std::string& allowed, const std::string& help) {
  return app.add_option_function<std::string>(
      name,
      [&value, name, allowed](const std::string& text) {
        if (text.empty()) throw UserError(name + " is empty (allowed: " + allowed + ")");
        value = text;
      },
      help);
}

}  // namespace moe
