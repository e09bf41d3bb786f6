// moe-train: trains one model from a TOML config and writes one HDF5 run file.
//   moe-train --config FILE.toml [--set section.key=value ...] [--output RUN.h5]
//             [--resume] [--stop-after N]
// Bad input (options, config, data) -> one line on stderr, exit 2, no output file.
// Exit 0 when complete or stopped with a checkpoint (--stop-after, SIGTERM, SIGUSR1),
// 1 when the run failed (the file keeps status = failed and the reason).
#include <mpi.h>

#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "programs/command_line.hpp"
#include "programs/run_main.hpp"
#include "train/run.hpp"

namespace {

struct Options {
  std::string config_path, output;
  std::vector<std::string> sets;
  moe::RunOptions run;
};

// False when --help was given.
bool parse_args(int argc, char** argv, Options& o, bool print_help) {
  CLI::App app("Trains one model from a TOML config and writes one HDF5 run file.", "moe-train");
  moe::add_config_options(app, o.config_path, o.sets);
  moe::add_nonempty(app, "--output", o.output, "a file path",
                    "run file (HDF5); overrides output.path");
  app.add_flag("--resume", o.run.resume, "continue the run file from its last checkpoint");
  app.add_flag("--overwrite", o.run.overwrite,
               "replace a complete run or an unfinished run's checkpoint at the output");
  moe::add_integer(app, "--stop-after", o.run.stop_after, 1, INT64_MAX,
                   "checkpoint and stop after this many steps")
      ->default_str("");
  return moe::parse_command_line(app, argc, argv, print_help);
}

int run(int argc, char** argv, int rank) {
  Options opt;
  if (!parse_args(argc, argv, opt, rank == 0)) return 0;
  // After MPI_Init, which may install handlers of its own.
  moe::install_stop_signal_handlers();
  moe::Config cfg = moe::load_config(opt.config_path, opt.sets);
  if (!opt.output.empty()) cfg.output.path = opt.output;
  opt.run.log = &std::cout;
  if (!opt.config_path.empty()) opt.run.inputs.push_back(opt.config_path);
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
                           [&](const moe::Runtime& rt) { return run(argc, argv, rt.rank()); });
}
