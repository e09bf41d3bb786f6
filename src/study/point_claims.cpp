#include "study/point_claims.hpp"

#include <cstdio>
#include <filesystem>
#include <ostream>

#include "study/index.hpp"

namespace moe {

namespace fs = std::filesystem;

std::string run_path(const Study& st, const StudyPoint& p) {
  return (fs::path(st.output_dir) / p.file).string();
}

namespace {

// The index with an entry for every point of the study (rebuilt when missing or stale).
Json current_index(const Study& st) {
  Json idx = read_index(st.output_dir);
  bool complete = !idx.is_null();
  for (const StudyPoint& p : st.points)
    if (complete && !find_entry(idx, p.id)) complete = false;
  return complete ? idx : sync_index(st, idx, SyncMode::Keep);
}

}  // namespace

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
    // A checkpoint is what a kill or a stop leaves (the resume rebuilds the run file from it,
    // whatever a kill left at the path). A failed run starts over (run_training replaces it).
    c.resume = f.checkpoint && !(f.readable && f.status == "failed");
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

std::map<std::string, int> status_counts(const Study& st) {
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
  return counts;
}

}  // namespace moe
