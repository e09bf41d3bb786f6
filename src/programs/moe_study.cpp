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

#include "programs/run_main.hpp"
#include "study/driver.hpp"
#include "study/study.hpp"
#include "train/run.hpp"
#include "util/checked_parse.hpp"
#include "util/user_error.hpp"

namespace {

const char* kUsage =
    "usage: moe-study STUDY.toml [--list] [--point I] [--output-dir DIR] [--ranks-per-run R] "
    "[--scale] [--stop-after N]";

struct Options {
  std::string study;
  bool list = false;
  bool scale = false;
  std::string output_dir;
  int ranks_per_run = 0;
  moe::StudyOptions run;
};

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() {
      if (i + 1 >= argc) throw moe::UserError(a + " needs a value (" + kUsage + ")");
      return std::string(argv[++i]);
    };
    if (a == "--list")
      o.list = true;
    else if (a == "--scale")
      o.scale = true;
    else if (a == "--point")
      o.run.point = int(moe::parse_integer(a, value(), 0, INT_MAX));
    else if (a == "--output-dir") {
      o.output_dir = value();
      if (o.output_dir.empty())
        throw moe::UserError("--output-dir is empty (allowed: a directory)");
    } else if (a == "--ranks-per-run")
      o.ranks_per_run = int(moe::parse_integer(a, value(), 1, INT_MAX));
    else if (a == "--stop-after")
      o.run.stop_after = moe::parse_integer(a, value(), 1);
    else if (a.rfind("--kokkos-", 0) == 0)
      continue;  // consumed by Kokkos
    else if (a.rfind("--", 0) == 0 || !o.study.empty())
      throw moe::UserError("unknown argument '" + a + "' (" + kUsage + ")");
    else
      o.study = a;
  }
  if (o.study.empty()) throw moe::UserError(std::string("no study file (") + kUsage + ")");
  const char* env = std::getenv("MOE_STUDY_SCALE");
  if (env && std::string(env) == "1") o.scale = true;
  return o;
}

int run(int argc, char** argv, int rank) {
  {
    Options opt = parse_args(argc, argv);
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
}

}  // namespace

int main(int argc, char** argv) {
  moe::install_study_stop_handlers();
  return moe::run_mpi_main("moe-study", argc, argv,
                           [&](const moe::Runtime& rt) { return run(argc, argv, rt.rank()); });
}
