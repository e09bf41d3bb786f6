// moe-study: runs a study (a base config and sweep axes) as one run file per point.
//   moe-study STUDY.toml [--list] [--point I] [--output-dir DIR] [--ranks-per-run R]
//             [--scale] [--stop-after N]
// Under MPI, COMM_WORLD splits into groups of ranks_per_run ranks that take points as they free
// up. A rerun skips complete points, resumes interrupted ones from their checkpoints and reruns
// failed ones. SIGTERM/SIGUSR1: the running trainings checkpoint and stop, no new point starts,
// exit 0. --list prints "<index> <id> <key=value ...>" per point; --point I runs point I only
// (job arrays). --scale (or MOE_STUDY_SCALE=1) applies the study's [scale] table.
// --stop-after N stops each run after N steps with a checkpoint (and the study after it).
// Bad input -> one line on stderr, exit 2, nothing run. Exit 1 when a point failed.
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <stdexcept>
#include <string>

#include "programs/command_line.hpp"
#include "programs/run_main.hpp"
#include "study/driver.hpp"
#include "study/study.hpp"
#include "train/run.hpp"
#include "util/user_error.hpp"

namespace {

struct Options {
  std::string study;
  bool list = false;
  bool scale = false;
  std::string output_dir;
  int ranks_per_run = 0;
  moe::StudyOptions run;
};

// False when --help was given.
bool parse_args(int argc, char** argv, Options& o, bool print_help) {
  CLI::App app("Runs a study (a base config and sweep axes) as one run file per point.",
               "moe-study");
  app.add_option("study", o.study, "the study file (TOML)")->required()->type_name("STUDY.toml");
  app.add_flag("--list", o.list, "print \"<index> <id> <key=value ...>\" per point and exit");
  moe::add_integer(app, "--point", o.run.point, 0, INT_MAX, "run this point only (job arrays)")
      ->default_str("");
  moe::add_nonempty(app, "--output-dir", o.output_dir, "a directory",
                    "where run files and index.json go (default: the study's output_dir)");
  moe::add_integer(app, "--ranks-per-run", o.ranks_per_run, 1, INT_MAX,
                   "MPI ranks per run (default: the study's ranks_per_run)")
      ->default_str("");
  app.add_flag("--scale", o.scale, "apply the study's [scale] table (or MOE_STUDY_SCALE=1)");
  moe::add_integer(app, "--stop-after", o.run.stop_after, 1, INT64_MAX,
                   "stop each run after this many steps, with a checkpoint")
      ->default_str("");
  if (!moe::parse_command_line(app, argc, argv, print_help)) return false;
  const char* env = std::getenv("MOE_STUDY_SCALE");
  if (env && std::string(env) == "1") o.scale = true;
  return true;
}

int run(int argc, char** argv, int rank) {
  Options opt;
  if (!parse_args(argc, argv, opt, rank == 0)) return 0;
  moe::Study study = moe::load_study(opt.study, opt.scale);
  if (!opt.output_dir.empty()) study.output_dir = opt.output_dir;
  if (opt.ranks_per_run > 0) study.ranks_per_run = opt.ranks_per_run;
  if (opt.run.point >= int(study.points.size()))
    throw moe::UserError("--point " + std::to_string(opt.run.point) + " (allowed: 0.." +
                         std::to_string(study.points.size() - 1) + "; " +
                         std::to_string(study.points.size()) + " points, see --list)");
  if (opt.list) {
    if (rank == 0)
      for (std::size_t i = 0; i < study.points.size(); ++i)
        std::cout << i << " " << study.points[i].id << " "
                  << moe::describe_params(study.points[i].params) << "\n";
    return 0;
  }
  opt.run.out = &std::cout;
  return moe::run_study(study, opt.run, MPI_COMM_WORLD);
}

}  // namespace

int main(int argc, char** argv) {
  moe::install_study_stop_handlers();
  return moe::run_mpi_main("moe-study", argc, argv,
                           [&](const moe::Runtime& rt) { return run(argc, argv, rt.rank()); });
}
