#include "study/driver.hpp"

#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <ostream>
#include <sstream>

#include "io/checkpoint.hpp"
#include "study/index.hpp"
#include "study/point_claims.hpp"
#include "train/run.hpp"

namespace moe {

namespace fs = std::filesystem;

namespace {

volatile std::sig_atomic_t g_study_stop = 0;
using Handler = void (*)(int);
Handler g_prev_term = SIG_DFL, g_prev_usr1 = SIG_DFL;

// Sets the study's flag, then lets run_training's handler see the signal too.
extern "C" void on_study_stop(int sig) {
  g_study_stop = 1;
  const Handler prev = sig == SIGTERM ? g_prev_term : g_prev_usr1;
  if (prev != SIG_DFL && prev != SIG_IGN && prev != SIG_ERR) prev(sig);
}

void bcast_string(std::string& s, int root, MPI_Comm comm) {
  int n = int(s.size());
  MPI_Bcast(&n, 1, MPI_INT, root, comm);
  s.resize(std::size_t(n));
  if (n > 0) MPI_Bcast(&s[0], n, MPI_CHAR, root, comm);
}

std::string host_name() {
  char buf[256] = {0};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

struct PointResult {
  RunOutcome outcome = RunOutcome::Failed;
  std::string error;  // input errors found by run_training (data, checkpoint)
};

PointResult run_point(const Study& st, int i, bool resume, const StudyOptions& opts, MPI_Comm group,
                      bool leader) {
  const StudyPoint& p = st.points[std::size_t(i)];
  PointResult r;
  Config cfg;
  try {
    cfg = point_config(st, p);
  } catch (const std::exception& e) {
    r.error = e.what();
    return r;
  }
  std::ofstream log;
  RunOptions ro;
  ro.resume = resume;
  ro.overwrite = !resume;  // the study owns its points' files: a point that starts over replaces
  ro.stop_after = opts.stop_after;
  if (leader) {
    log.open((fs::path(st.output_dir) / (p.id + ".log")).string(), std::ios::app);
    ro.log = &log;
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    try {
      r.outcome = run_training(cfg, ro, group);
      r.error.clear();
      return r;
    } catch (const std::exception& e) {  // UserError: nothing was written
      r.outcome = RunOutcome::Failed;
      r.error = e.what();
      if (log.is_open()) log << "moe-study: " << r.error << "\n" << std::flush;
      if (!ro.resume) return r;
      // An unusable checkpoint: start the point over rather than give it up.
      ro.resume = false;
      ro.overwrite = true;
    }
  }
  return r;
}

// The world's rank 0 makes the output directory and syncs the index; an error there is bad
// input for every rank (UserError on all of them).
void prepare_output(const Study& st, const StudyOptions& opts, int rank, MPI_Comm world) {
  std::string err;
  if (rank == 0) {
    try {
      std::error_code ec;
      fs::create_directories(st.output_dir, ec);
      if (ec || !fs::is_directory(st.output_dir))
        throw std::runtime_error("cannot create output directory '" + st.output_dir +
                                 "': " + ec.message());
      IndexLock lock(st.output_dir);
      const Json old = read_index(st.output_dir);
      write_index(st.output_dir,
                  sync_index(st, old, opts.point < 0 ? SyncMode::Restart : SyncMode::Keep));
    } catch (const std::exception& e) {
      err = e.what();
    }
  }
  bcast_string(err, 0, world);
  if (!err.empty()) throw UserError(err);
}

// This rank's group of ranks_per_run ranks, which trains one point at a time.
struct Group {
  MPI_Comm comm = MPI_COMM_NULL;
  int id = 0;
  bool leader = false;
  std::string who;              // "host:pid rank R group G", the index's claimed_by
  std::string tag;              // "moe-study <name>[ group G]", the start of each line
  std::ostream* out = nullptr;  // the leader's progress stream
};

Group make_group(const Study& st, const StudyOptions& opts, int rank, int size, MPI_Comm world) {
  Group g;
  g.id = rank / st.ranks_per_run;
  MPI_Comm_split(world, g.id, rank, &g.comm);
  int grank = 0;
  MPI_Comm_rank(g.comm, &grank);
  g.leader = grank == 0;
  g.who = host_name() + ":" + std::to_string(getpid()) + " rank " + std::to_string(rank) +
          " group " + std::to_string(g.id);
  g.tag = "moe-study " + st.name +
          (size / st.ranks_per_run > 1 ? " group " + std::to_string(g.id) : "");
  g.out = g.leader ? opts.out : nullptr;
  return g;
}

const char* status_name(RunOutcome outcome) {
  return outcome == RunOutcome::Complete  ? "complete"
         : outcome == RunOutcome::Stopped ? "stopped"
                                          : "failed";
}

// The leader's line after a point: status, time, final losses, the error, a resume hint.
std::string result_line(const Group& g, const Study& st, int i, const PointResult& r,
                        double elapsed) {
  const StudyPoint& p = st.points[std::size_t(i)];
  const RunFileState f = inspect_run_file(run_path(st, p));
  std::ostringstream line;
  char buf[160];
  std::snprintf(buf, sizeof buf, " in %.1f s", elapsed);
  line << g.tag << ": [" << i + 1 << "/" << st.points.size() << "] " << p.id << " "
       << status_name(r.outcome) << buf;
  if (f.has_final && r.outcome == RunOutcome::Complete) {
    std::snprintf(buf, sizeof buf, ", final_loss %.4f final_val_loss %.4f", f.final_loss,
                  f.final_val_loss);
    line << buf;
  }
  if (!r.error.empty()) line << ": " << r.error;
  if (r.outcome == RunOutcome::Stopped) line << " (checkpointed; a rerun resumes it)";
  return line.str();
}

// The group trains point i (claimed by its leader); the leader records and reports the outcome.
// Returns the outcome; failed is set when the point or its bookkeeping failed.
RunOutcome run_claimed(const Study& st, const StudyOptions& opts, const Group& g, int i,
                       bool resume, int& failed) {
  const StudyPoint& p = st.points[std::size_t(i)];
  if (g.out) {
    std::ostringstream line;
    line << g.tag << ": [" << i + 1 << "/" << st.points.size() << "] " << p.id << " "
         << (resume ? "resumes from its checkpoint" : "starts") << " (" << describe_params(p.params)
         << ")\n";
    *g.out << line.str() << std::flush;
  }
  const auto t0 = std::chrono::steady_clock::now();
  const PointResult r = run_point(st, i, resume, opts, g.comm, g.leader);
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (r.outcome == RunOutcome::Failed) failed = 1;
  if (!g.leader) return r.outcome;
  // A complete run file is final (a rerun skips it): its checkpoint only takes space.
  if (r.outcome == RunOutcome::Complete) std::remove(checkpoint_path(run_path(st, p)).c_str());
  try {
    record(st, i, status_name(r.outcome), elapsed, r.error);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moe-study: %s\n", e.what());
    failed = 1;
  }
  const std::string line = result_line(g, st, i, r, elapsed);
  if (g.out)
    *g.out << line << "\n" << std::flush;
  else if (r.outcome == RunOutcome::Failed)
    std::fprintf(stderr, "%s\n", line.c_str());
  return r.outcome;
}

void print_summary(const Study& st, std::ostream& out) {
  std::map<std::string, int> counts = status_counts(st);
  std::ostringstream line;
  line << "moe-study " << st.name << ": " << counts["complete"] << "/" << st.points.size()
       << " complete";
  for (const char* s : {"running", "stopped", "failed", "pending"})
    if (counts[s]) line << ", " << counts[s] << " " << s;
  line << " (" << index_path(st.output_dir) << ")";
  if (study_stop_requested()) line << "; stopped by a signal";
  out << line.str() << "\n" << std::flush;
}

}  // namespace

void install_study_stop_handlers() {
  install_stop_signal_handlers();
  g_prev_term = std::signal(SIGTERM, on_study_stop);
  g_prev_usr1 = std::signal(SIGUSR1, on_study_stop);
}

bool study_stop_requested() {
  return g_study_stop != 0;
}

int run_study(const Study& st, const StudyOptions& opts, MPI_Comm world) {
  int rank = 0, size = 1;
  MPI_Comm_rank(world, &rank);
  MPI_Comm_size(world, &size);
  const int rpr = st.ranks_per_run;
  if (size % rpr != 0)
    throw UserError(std::to_string(size) +
                    " MPI ranks do not split into groups of ranks_per_run = " +
                    std::to_string(rpr) + " (allowed: a multiple of ranks_per_run)");
  if (opts.point >= int(st.points.size()))
    throw UserError("--point " + std::to_string(opts.point) + " (allowed: 0.." +
                    std::to_string(st.points.size() - 1) + "; see --list)");
  prepare_output(st, opts, rank, world);

  Group g = make_group(st, opts, rank, size, world);
  int failed = 0;
  bool stopped = false;
  while (true) {
    Claim c;
    if (g.leader && !stopped && !study_stop_requested() && (opts.point < 0 || g.id == 0)) {
      try {
        c = claim_next(st, opts.point, g.who, g.out);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "moe-study: %s\n", e.what());
        failed = 1;
      }
    }
    int msg[2] = {c.point, c.resume};
    MPI_Bcast(msg, 2, MPI_INT, 0, g.comm);
    if (msg[0] < 0) break;
    if (run_claimed(st, opts, g, msg[0], msg[1] != 0, failed) == RunOutcome::Stopped)
      stopped = true;
    if (opts.point >= 0) break;
  }

  int any_failed = 0;
  MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, world);
  if (rank == 0 && opts.out) print_summary(st, *opts.out);
  MPI_Comm_free(&g.comm);
  return any_failed ? 1 : 0;
}

}  // namespace moe
