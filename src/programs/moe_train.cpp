// moe-train: trains one model from a TOML config and writes one HDF5 run file.
//   moe-train --config FILE.toml [--set section.key=value ...] [--output RUN.h5]
//             [--resume] [--stop-after N]
// Bad input (options, config, data) -> one line on stderr, exit 2, no output file.
// Exit 0 when complete or stopped with a checkpoint (--stop-after, SIGTERM, SIGUSR1),
// 1 when the run failed (the file keeps status = failed and the reason).
#include <mpi.h>

#include <cstdio>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "programs/run_main.hpp"
#include "train/run.hpp"
#include "util/checked_parse.hpp"
#include "util/user_error.hpp"

namespace {

const char* kUsage =
    "usage: moe-train --config FILE.toml [--set section.key=value ...] [--output RUN.h5] "
    "[--resume] [--stop-after N]";

struct Options {
  std::string config_path, output;
  std::vector<std::string> sets;
  moe::RunOptions run;
};

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() {
      if (i + 1 >= argc) throw moe::UserError(a + " needs a value (" + kUsage + ")");
      return std::string(argv[++i]);
    };
    if (a == "--config")
      o.config_path = value();
    else if (a == "--set")
      o.sets.push_back(value());
    else if (a == "--output")
      o.output = value();
    else if (a == "--resume")
      o.run.resume = true;
    else if (a == "--stop-after") {
      o.run.stop_after = moe::parse_integer("--stop-after", value(), 1);
    } else if (a.rfind("--kokkos-", 0) == 0)
      continue;  // consumed by Kokkos
    else
      throw moe::UserError("unknown argument '" + a + "' (" + kUsage + ")");
  }
  return o;
}

int run(int argc, char** argv) {
  // After MPI_Init, which may install handlers of its own.
  moe::install_stop_signal_handlers();
  Options opt = parse_args(argc, argv);
  moe::Config cfg = moe::load_config(opt.config_path, opt.sets);
  if (!opt.output.empty()) cfg.output.path = opt.output;
  opt.run.log = &std::cout;
  switch (moe::run_training(cfg, opt.run, MPI_COMM_WORLD)) {
    case moe::RunOutcome::Complete:
    case moe::RunOutcome::Stopped:
      return 0;
    case moe::RunOutcome::Failed:
      return 1;
  }
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  return moe::run_mpi_main("moe-train", argc, argv,
                           [&](const moe::Runtime&) { return run(argc, argv); });
}
