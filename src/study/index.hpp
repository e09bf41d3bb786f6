// The study index, <output-dir>/index.json: what every point is and how far it got.
//   {"study": name, "study_file", "keys": [swept keys], "ranks_per_run", "scaled",
//    "points": [{"id", "params": {full key: value}, "file": "<id>.h5",
//                "status": "pending|running|complete|failed|stopped",
//                "final_loss", "final_val_loss", "claimed_by", "elapsed_s", "updated", "error"}]}
// Several processes share it (MPI rank groups, job-array tasks): each change happens under an
// exclusive flock on index.json.lock, reading the current index and replacing it atomically
// (write a temporary file, then rename), so readers never see half a file.
// The run files are the truth: a point is complete when its file's root attribute `status` is
// "complete"; the index is rebuilt from them when it is missing or unreadable.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "study/study.hpp"

namespace moe {

// JSON with the keys in insertion order, so that a rewritten index reads like the one before.
using Json = nlohmann::ordered_json;

// Exclusive lock on <dir>/index.json.lock for the lifetime of the object.
class IndexLock {
 public:
  explicit IndexLock(const std::string& dir);  // throws std::runtime_error naming the file
  ~IndexLock();
  IndexLock(const IndexLock&) = delete;
  IndexLock& operator=(const IndexLock&) = delete;

 private:
  int fd_ = -1;
};

std::string index_path(const std::string& dir);

// The index, or null when absent or unreadable (a warning goes to stderr when unreadable).
Json read_index(const std::string& dir);
// Atomic replacement: temp file beside it, then rename. Throws std::runtime_error.
void write_index(const std::string& dir, const Json& index);

// What a run file says about its point.
struct RunFileState {
  bool exists = false;
  bool readable = false;  // false while another process writes it (HDF5 file locking)
  std::string status;     // running | complete | failed ("" when not readable)
  double final_loss = 0, final_val_loss = 0;
  bool has_final = false;
  bool checkpoint = false;  // <file>.ckpt exists
};
RunFileState inspect_run_file(const std::string& path);

enum class SyncMode {
  Restart,  // a whole-study run starts: every point not complete in its run file -> pending
  Keep,     // keep the statuses found in the index; points new to it are derived from files
};

// The index for the study's current points, carrying over what `old` knows (old may be null).
Json sync_index(const Study& study, const Json& old, SyncMode mode);

// Entry of a point by id (nullptr when absent).
Json* find_entry(Json& index, const std::string& id);

// Sets status (and metrics from `file` when complete) of an entry.
void set_status(Json& entry, const std::string& status, const RunFileState* file = nullptr);

}  // namespace moe
