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

std::string run_path(const Study& st, const StudyPoint& p) {
  return (fs::path(st.output_dir) / p.file).string();
}

// The index with an entry for every point of the study (rebuilt when missing or stale).
Json current_index(const Study& st) {
  Json idx = read_index(st.output_dir);
  bool complete = !idx.is_null();
  for (const StudyPoint& p : st.points)
    if (complete && !find_entry(idx, p.id)) complete = false;
  return complete ? idx : sync_index(st, idx, SyncMode::Keep);
}

struct Claim {
  int point = -1;
  int resume = 0;
};

// Under the index lock: the first pending point (or `only`), marked running by `who`. Points
// whose run file turns out complete are recorded as such and passed over.
Claim claim_next(const Study& st, int only, const std::string& who, std::ostream* out) {
  IndexLock lock(st.output_dir);
  Json idx = current_index(st);
  Claim c;
  bool changed = false;
  const int first = only >= 0 ? only : 0;
  const int last = only >= 0 ? only + 1 : int(st.points.size());
  for (int i = first; i < last; ++i) {
    const StudyPoint& p = st.points[std::size_t(i)];
    Json& entry = *find_entry(idx, p.id);
    if (only < 0 && entry.value("status", Json()) != "pending") continue;
    const std::string path = run_path(st, p);
    const RunFileState f = inspect_run_file(path);
    if (f.readable && f.status == "complete") {
      set_status(entry, "complete", &f);
      changed = true;
      if (out && only >= 0)
        *out << "moe-study: point " << i << " " << p.id << " is already complete\n" << std::flush;
      continue;
    }
    c.resume = f.readable && f.status == "running" && f.checkpoint;
    // A checkpoint beside a failed or torn run would be resumed by a later rerun: drop it.
    if (!c.resume && f.checkpoint) std::remove(checkpoint_path(path).c_str());
    set_status(entry, "running");
    entry["claimed_by"] = who;
    entry["error"] = nullptr;
    changed = true;
    c.point = i;
    break;
  }
  if (changed) write_index(st.output_dir, idx);
  return c;
}

void record(const Study& st, int i, const std::string& status, double elapsed,
            const std::string& error) {
  IndexLock lock(st.output_dir);
  Json idx = current_index(st);
  const StudyPoint& p = st.points[std::size_t(i)];
  Json& entry = *find_entry(idx, p.id);
  const RunFileState f = inspect_run_file(run_path(st, p));
  set_status(entry, status, &f);
  entry["elapsed_s"] = elapsed;
  entry["error"] = error.empty() ? Json(nullptr) : Json(error);
  write_index(st.output_dir, idx);
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
      if (leader) std::remove(checkpoint_path(cfg.output.path).c_str());
      MPI_Barrier(group);
      ro.resume = false;
    }
  }
  return r;
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

  // Output directory and index, by world rank 0; an error there is bad input for everyone.
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

  const int group_id = rank / rpr;
  MPI_Comm group;
  MPI_Comm_split(world, group_id, rank, &group);
  int grank = 0;
  MPI_Comm_rank(group, &grank);
  const bool leader = grank == 0;
  const int groups = size / rpr;
  const std::string who = host_name() + ":" + std::to_string(getpid()) + " rank " +
                          std::to_string(rank) + " group " + std::to_string(group_id);
  const std::string tag =
      "moe-study " + st.name + (groups > 1 ? " group " + std::to_string(group_id) : "");
  std::ostream* out = leader ? opts.out : nullptr;
  const int n = int(st.points.size());

  int failed = 0;
  bool stopped = false;
  while (true) {
    Claim c;
    if (leader && !stopped && !study_stop_requested() && (opts.point < 0 || group_id == 0)) {
      try {
        c = claim_next(st, opts.point, who, out);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "moe-study: %s\n", e.what());
        failed = 1;
      }
    }
    int msg[2] = {c.point, c.resume};
    MPI_Bcast(msg, 2, MPI_INT, 0, group);
    if (msg[0] < 0) break;
    const StudyPoint& p = st.points[std::size_t(msg[0])];
    if (out) {
      std::ostringstream line;
      line << tag << ": [" << msg[0] + 1 << "/" << n << "] " << p.id << " "
           << (msg[1] ? "resumes from its checkpoint" : "starts") << " ("
           << describe_params(p.params) << ")\n";
      *out << line.str() << std::flush;
    }
    const auto t0 = std::chrono::steady_clock::now();
    const PointResult r = run_point(st, msg[0], msg[1] != 0, opts, group, leader);
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const std::string status = r.outcome == RunOutcome::Complete  ? "complete"
                               : r.outcome == RunOutcome::Stopped ? "stopped"
                                                                  : "failed";
    if (r.outcome == RunOutcome::Failed) failed = 1;
    // A complete run file is final (a rerun skips it): its checkpoint only takes space.
    if (leader && r.outcome == RunOutcome::Complete)
      std::remove(checkpoint_path(run_path(st, p)).c_str());
    if (r.outcome == RunOutcome::Stopped) stopped = true;
    if (leader) {
      try {
        record(st, msg[0], status, elapsed, r.error);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "moe-study: %s\n", e.what());
        failed = 1;
      }
      const RunFileState f = inspect_run_file(run_path(st, p));
      std::ostringstream line;
      char buf[160];
      std::snprintf(buf, sizeof buf, " in %.1f s", elapsed);
      line << tag << ": [" << msg[0] + 1 << "/" << n << "] " << p.id << " " << status << buf;
      if (f.has_final && r.outcome == RunOutcome::Complete) {
        std::snprintf(buf, sizeof buf, ", final_loss %.4f final_val_loss %.4f", f.final_loss,
                      f.final_val_loss);
        line << buf;
      }
      if (!r.error.empty()) line << ": " << r.error;
      if (r.outcome == RunOutcome::Stopped) line << " (checkpointed; a rerun resumes it)";
      if (out)
        *out << line.str() << "\n" << std::flush;
      else if (r.outcome == RunOutcome::Failed)
        std::fprintf(stderr, "%s\n", line.str().c_str());
    }
    if (opts.point >= 0) break;
  }

  int any_failed = 0;
  MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, world);
  if (rank == 0 && opts.out) {
    std::map<std::string, int> counts;
    try {
      IndexLock lock(st.output_dir);
      const Json idx = read_index(st.output_dir);
      if (idx.is_object())
        for (const Json& e : idx["points"])
          if (e.is_object() && e.value("status", Json()).is_string())
            ++counts[e["status"].get<std::string>()];
    } catch (const std::exception&) {
    }
    std::ostringstream line;
    line << "moe-study " << st.name << ": " << counts["complete"] << "/" << n << " complete";
    for (const char* s : {"running", "stopped", "failed", "pending"})
      if (counts[s]) line << ", " << counts[s] << " " << s;
    line << " (" << index_path(st.output_dir) << ")";
    if (study_stop_requested()) line << "; stopped by a signal";
    *opts.out << line.str() << "\n" << std::flush;
  }
  MPI_Comm_free(&group);
  return any_failed ? 1 : 0;
}

}  // namespace moe
