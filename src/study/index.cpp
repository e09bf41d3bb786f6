#include "study/index.hpp"

#include <fcntl.h>
#include <hdf5.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
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

json::Value param_json(const ParamValue& v) {
  switch (v.kind) {
    case ParamValue::Kind::Int:
      return json::Value::integer(v.i);
    case ParamValue::Kind::Float:
      return json::Value::number(v.f);
    case ParamValue::Kind::Bool:
      return json::Value::boolean(v.b);
    case ParamValue::Kind::String:
      break;
  }
  return json::Value::string(v.s);
}

json::Value fresh_entry(const StudyPoint& p) {
  json::Value e = json::Value::object();
  e.set("id", json::Value::string(p.id));
  json::Value params = json::Value::object();
  for (const Param& q : p.params) params.set(q.key, param_json(q.value));
  e.set("params", params);
  e.set("file", json::Value::string(p.file));
  e.set("status", json::Value::string("pending"));
  e.set("final_loss", json::Value::null());
  e.set("final_val_loss", json::Value::null());
  return e;
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
bool claim_alive(const json::Value& entry, const RunFileState& f) {
  const json::Value* status = entry.find("status");
  if (!status || status->type != json::Value::Type::String || status->s != "running") return false;
  if (f.exists && !f.readable) return true;
  const json::Value* by = entry.find("claimed_by");
  if (!by || by->type != json::Value::Type::String) return false;
  const std::size_t colon = by->s.find(':');
  if (colon == std::string::npos) return false;
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  if (by->s.substr(0, colon) != host) return false;
  const long pid = std::strtol(by->s.c_str() + colon + 1, nullptr, 10);
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

json::Value read_index(const std::string& dir) {
  const std::string path = index_path(dir);
  std::ifstream in(path, std::ios::binary);
  if (!in) return json::Value::null();
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  try {
    json::Value v = json::parse(text);
    const json::Value* points = v.type == json::Value::Type::Object ? v.find("points") : nullptr;
    if (!points || points->type != json::Value::Type::Array)
      throw std::runtime_error("no \"points\" array");
    return v;
  } catch (const std::exception& e) {
    std::cerr << "moe-study: warning: ignoring unreadable index '" << path << "' (" << e.what()
              << "); rebuilding it from the run files\n";
    return json::Value::null();
  }
}

void write_index(const std::string& dir, const json::Value& index) {
  const std::string path = index_path(dir);
  char host[128] = {0};
  gethostname(host, sizeof host - 1);
  const std::string tmp = path + ".tmp." + host + "." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << json::write(index);
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

json::Value* find_entry(json::Value& index, const std::string& id) {
  json::Value* points = index.find("points");
  if (!points) return nullptr;
  for (json::Value& e : points->items) {
    const json::Value* v = e.find("id");
    if (v && v->type == json::Value::Type::String && v->s == id) return &e;
  }
  return nullptr;
}

void set_status(json::Value& entry, const std::string& status, const RunFileState* file) {
  entry.set("status", json::Value::string(status));
  // Final metrics belong to complete runs; a stopped run's are not final (and may predate
  // its first evaluation).
  const bool final = status == "complete" && file && file->has_final;
  entry.set("final_loss", final ? json::Value::number(file->final_loss) : json::Value::null());
  entry.set("final_val_loss",
            final ? json::Value::number(file->final_val_loss) : json::Value::null());
  if (status != "running") entry.set("claimed_by", json::Value::null());
  entry.set("updated", json::Value::string(now_iso8601()));
}

json::Value sync_index(const Study& study, const json::Value& old_in, SyncMode mode) {
  json::Value old = old_in;
  json::Value index = json::Value::object();
  index.set("study", json::Value::string(study.name));
  if (!study.description.empty()) index.set("description", json::Value::string(study.description));
  index.set("study_file", json::Value::string(study.study_file));
  json::Value keys = json::Value::array();
  for (const std::string& k : study.keys) keys.items.push_back(json::Value::string(k));
  index.set("keys", keys);
  index.set("ranks_per_run", json::Value::integer(study.ranks_per_run));
  index.set("scaled", json::Value::boolean(study.scaled));
  json::Value points = json::Value::array();
  for (const StudyPoint& p : study.points) {
    json::Value e = fresh_entry(p);
    const json::Value* prev = old.is_null() ? nullptr : find_entry(old, p.id);
    if (prev) {  // keep what the index knew about this point, beyond its definition
      for (const auto& [k, v] : prev->members)
        if (k != "id" && k != "params" && k != "file") e.set(k, v);
    }
    if (mode == SyncMode::Restart || !prev) {
      const RunFileState f = inspect_run_file((fs::path(study.output_dir) / p.file).string());
      std::string status = status_from_file(f);
      if (mode == SyncMode::Restart && status != "complete") status = "pending";
      if (!(mode == SyncMode::Restart && status != "complete" && claim_alive(e, f)))
        set_status(e, status, &f);
    }
    points.items.push_back(e);
  }
  index.set("points", points);
  return index;
}

}  // namespace moe
