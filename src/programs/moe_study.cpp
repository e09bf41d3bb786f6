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
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <stdexcept>
#include <string>

#include "parallel/runtime.hpp"
#include "study/driver.hpp"
#include "study/study.hpp"
#include "train/run.hpp"

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

long long parse_count(const std::string& opt, const std::string& v, long long min,
                      const std::string& allowed) {
  std::size_t used = 0;
  long long n = min - 1;
  try {
    n = std::stoll(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != v.size() || n < min)
    throw moe::StudyError(opt + " '" + v + "' (allowed: " + allowed + ")");
  return n;
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() {
      if (i + 1 >= argc) throw moe::StudyError(a + " needs a value (" + kUsage + ")");
      return std::string(argv[++i]);
    };
    if (a == "--list")
      o.list = true;
    else if (a == "--scale")
      o.scale = true;
    else if (a == "--point")
      o.run.point = int(parse_count(a, value(), 0, "a point index >= 0"));
    else if (a == "--output-dir") {
      o.output_dir = value();
      if (o.output_dir.empty())
        throw moe::StudyError("--output-dir is empty (allowed: a directory)");
    } else if (a == "--ranks-per-run")
      o.ranks_per_run = int(parse_count(a, value(), 1, "an integer >= 1"));
    else if (a == "--stop-after")
      o.run.stop_after = parse_count(a, value(), 1, "a step count >= 1");
    else if (a.rfind("--kokkos-", 0) == 0)
      continue;  // consumed by Kokkos
    else if (a.rfind("--", 0) == 0 || !o.study.empty())
      throw moe::StudyError("unknown argument '" + a + "' (" + kUsage + ")");
    else
      o.study = a;
  }
  if (o.study.empty()) throw moe::StudyError(std::string("no study file (") + kUsage + ")");
  const char* env = std::getenv("MOE_STUDY_SCALE");
  if (env && std::string(env) == "1") o.scale = true;
  return o;
}

int run(int argc, char** argv, int rank) {
  try {
    Options opt = parse_args(argc, argv);
    moe::Study study = moe::load_study(opt.study, opt.scale);
    if (!opt.output_dir.empty()) study.output_dir = opt.output_dir;
    if (opt.ranks_per_run > 0) study.ranks_per_run = opt.ranks_per_run;
    if (opt.run.point >= int(study.points.size()))
      throw moe::StudyError("--point " + std::to_string(opt.run.point) + " (allowed: 0.." +
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
  } catch (const std::exception& e) {  // StudyError: bad input, the same on every rank
    if (rank == 0) std::fprintf(stderr, "moe-study: %s\n", e.what());
    return 2;
  }
}

}  // namespace

int main(int argc, char** argv) {
  moe::install_study_stop_handlers();
  int rc;
  {
    moe::Runtime rt(argc, argv);
    rc = run(argc, argv, rt.rank());
  }
  return rc;
}
