#include "study/index.hpp"

#include <fcntl.h>
#include <hdf5.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <stdexcept>

#include "io/checkpoint.hpp"
#include "io/h5_util.hpp"

namespace moe {

namespace fs = std::filesystem;

namespace {

std::string now_iso8601() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

// JSON has no NaN or infinities: such a number is written as null.
Json number(double v) {
  return std::isfinite(v) ? Json(v) : Json(nullptr);
}

Json param_json(const ParamValue& v) {
  switch (v.kind) {
    case ParamValue::Kind::Int:
      return v.i;
    case ParamValue::Kind::Float:
      return number(v.f);
    case ParamValue::Kind::Bool:
      return v.b;
    case ParamValue::Kind::String:
      break;
  }
  return v.s;
}

Json fresh_entry(const StudyPoint& p) {
  Json e = Json::object();
  e["id"] = p.id;
  Json params = Json::object();
  for (const Param& q : p.params) params[q.key] = param_json(q.value);
  e["params"] = params;
  e["file"] = p.file;
  e["status"] = "pending";
  e["final_loss"] = nullptr;
  e["final_val_loss"] = nullptr;
  return e;
}

// The string at entry[key], or "" when absent or not a string.
std::string string_at(const Json& entry, const char* key) {
  const auto it = entry.find(key);
  return it != entry.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// The status a point gets from its run file alone, for points the index does not know.
std::string status_from_file(const RunFileState& f) {
  if (!f.exists) return "pending";
  if (!f.readable) return "running";  // most likely open for writing by another process
  if (f.status == "complete" || f.status == "failed") return f.status;
  if (f.status == "running" && f.checkpoint) return "stopped";
  return "pending";
}

// A "running" claim that is still alive: its run file is open for writing elsewhere (HDF5 file
// locking makes it unreadable), or the claimer "host:pid ..." is a live process on this host.
// A whole-study restart must not hand such a point out again.
bool claim_alive(const Json& entry, const RunFileState& f) {
  if (string_at(entry, "status") != "running") return false;
  if (f.exists && !f.readable) return true;
  const std::string by = string_at(entry, "claimed_by");
  const std::size_t colon = by.find(':');
  if (colon == std::string::npos) return false;
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  if (by.substr(0, colon) != host) return false;
  const long pid = std::strtol(by.c_str() + colon + 1, nullptr, 10);
  return pid > 0 && pid != long(::getpid()) && ::kill(pid_t(pid), 0) == 0;
}

}  // namespace

IndexLock::IndexLock(const std::string& dir) {
  const std::string path = index_path(dir) + ".lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw std::runtime_error("cannot open lock file '" + path + "': " + std::strerror(errno));
  while (::flock(fd_, LOCK_EX) != 0) {
    if (errno == EINTR) continue;  // a stop signal arrived while waiting: keep waiting
    const int err = errno;
    ::close(fd_);
    throw std::runtime_error("cannot lock '" + path + "': " + std::strerror(err));
  }
}

IndexLock::~IndexLock() {
  if (fd_ >= 0) {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
  }
}

std::string index_path(const std::string& dir) {
  return (fs::path(dir) / "index.json").string();
}

Json read_index(const std::string& dir) {
  const std::string path = index_path(dir);
  std::ifstream in(path, std::ios::binary);
  if (!in) return nullptr;
  try {
    Json v = Json::parse(in);
    if (!v.is_object() || !v.contains("points") || !v["points"].is_array())
      throw std::runtime_error("no \"points\" array");
    return v;
  } catch (const std::exception& e) {
    std::cerr << "moe-study: warning: ignoring unreadable index '" << path << "' (" << e.what()
              << "); rebuilding it from the run files\n";
    return nullptr;
  }
}

void write_index(const std::string& dir, const Json& index) {
  const std::string path = index_path(dir);
  char host[128] = {0};
  gethostname(host, sizeof host - 1);
  const std::string tmp = path + ".tmp." + host + "." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    // Bytes that are not UTF-8 (from a file name in an error) become U+FFFD, not an exception.
    out << index.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
    out.flush();
    if (!out) throw std::runtime_error("cannot write '" + tmp + "'");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    throw std::runtime_error("cannot replace '" + path + "': " + std::strerror(err));
  }
}

RunFileState inspect_run_file(const std::string& path) {
  RunFileState s;
  std::error_code ec;
  s.exists = fs::exists(path, ec);
  s.checkpoint = fs::exists(checkpoint_path(path), ec);
  if (!s.exists) return s;
  // Quietly: a file another process is writing (HDF5 file locking) or a torn one is no error.
  H5E_BEGIN_TRY {
    const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file >= 0) {
      try {
        if (h5::has_attr(file, "status")) {
          s.status = h5::read_string_attr(file, "status");
          s.readable = true;
        }
        if (h5::has_attr(file, "final_loss") && h5::has_attr(file, "final_val_loss")) {
          s.final_loss = h5::read_double_attr(file, "final_loss");
          s.final_val_loss = h5::read_double_attr(file, "final_val_loss");
          s.has_final = true;
        }
      } catch (const std::exception&) {
        s.readable = false;
      }
      H5Fclose(file);
    }
  }
  H5E_END_TRY;
  return s;
}

Json* find_entry(Json& index, const std::string& id) {
  if (!index.is_object() || !index.contains("points")) return nullptr;
  for (Json& e : index["points"])
    if (e.is_object() && string_at(e, "id") == id) return &e;
  return nullptr;
}

void set_status(Json& entry, const std::string& status, const RunFileState* file) {
  entry["status"] = status;
  // Final metrics belong to complete runs; a stopped run's are not final (and may predate
  // its first evaluation).
  const bool final = status == "complete" && file && file->has_final;
  entry["final_loss"] = final ? number(file->final_loss) : Json(nullptr);
  entry["final_val_loss"] = final ? number(file->final_val_loss) : Json(nullptr);
  if (status != "running") entry["claimed_by"] = nullptr;
  entry["updated"] = now_iso8601();
}

Json sync_index(const Study& study, const Json& old_in, SyncMode mode) {
  Json old = old_in;
  Json index = Json::object();
  index["study"] = study.name;
  if (!study.description.empty()) index["description"] = study.description;
  index["study_file"] = study.study_file;
  index["keys"] = study.keys;
  index["ranks_per_run"] = study.ranks_per_run;
  index["scaled"] = study.scaled;
  Json points = Json::array();
  for (const StudyPoint& p : study.points) {
    Json e = fresh_entry(p);
    const Json* prev = find_entry(old, p.id);
    if (prev) {  // keep what the index knew about this point, beyond its definition
      for (const auto& [k, v] : prev->items())
        if (k != "id" && k != "params" && k != "file") e[k] = v;
    }
    if (mode == SyncMode::Restart || !prev) {
      const RunFileState f = inspect_run_file((fs::path(study.output_dir) / p.file).string());
      std::string status = status_from_file(f);
      if (mode == SyncMode::Restart && status != "complete") status = "pending";
      if (!(mode == SyncMode::Restart && status != "complete" && claim_alive(e, f)))
        set_status(e, status, &f);
    }
    points.push_back(e);
  }
  index["points"] = points;
  return index;
}

}  // namespace moe
