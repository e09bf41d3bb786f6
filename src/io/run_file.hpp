// The run file: one HDF5 file per run. Scalar series (one value per step) and row series (one
// row of fixed width per step) are chunked, deflate-compressed, extendible datasets, appended
// as the run goes and flushed regularly. Uses HDF5's C API with the default (sec2) driver;
// one process writes. A process killed inside an HDF5 write can leave the live file torn, so
// the file is never trusted after a kill: each checkpoint carries the run file's image (the
// bytes of the flushed file), a resume installs that image in place of whatever is there,
// and a finished run's final state is written to a copy that is renamed into place.
// Every error throws std::runtime_error naming the file (and the OS error when there is one).
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "io/h5_util.hpp"

namespace moe {

class RunFile {
 public:
  enum class Mode { Create, Append };
  // Create truncates `path`; Append opens an existing run file and finds its series.
  // Throws std::runtime_error naming the file on failure.
  RunFile(const std::string& path, Mode mode = Mode::Create);
  ~RunFile() = default;
  RunFile(const RunFile&) = delete;
  RunFile& operator=(const RunFile&) = delete;

  const std::string& path() const { return path_; }

  // Attributes: "/name" on the root, "/group/name" on a group (created when missing).
  void set_attr(const std::string& name, const std::string& value);
  void set_attr(const std::string& name, double value);
  void set_attr(const std::string& name, std::int64_t value);
  std::string string_attr(const std::string& name) const;
  std::int64_t int_attr(const std::string& name) const;

  // A whole string as a scalar dataset (the config text); replaced if it exists.
  void write_text(const std::string& dataset, const std::string& text);
  // A fixed 1-D float64 dataset (e.g. bucket edges); replaced if it exists.
  void write_array(const std::string& dataset, const std::vector<double>& values);

  // Appends to 1-D series of float64 or int64 (created on first use).
  void append(const std::string& dataset, double value);
  void append(const std::string& dataset, std::int64_t value);
  // Appends one row to a 2-D [rows x width] series (created on first use with this width).
  void append_row(const std::string& dataset, const std::vector<std::int64_t>& row);
  void append_row(const std::string& dataset, const std::vector<double>& row);

  // Rows of every series, and cutting every series back to given rows (absent = 0): a
  // resumed run forgets the steps recorded after its checkpoint.
  std::map<std::string, std::int64_t> series_rows() const;
  void truncate(const std::map<std::string, std::int64_t>& rows);

  void flush();
  // Flushes and returns the file's bytes: a consistent HDF5 file (checkpoints keep it).
  std::string image();
  // Flushes and closes the file; the object is unusable afterwards. Throws on failure.
  void close();

 private:
  struct Series {
    h5::Handle dset;
    hsize_t rows = 0, width = 0;  // width 0: 1-D
  };
  Series& series(const std::string& name, hid_t type, hsize_t width);
  void append_raw(const std::string& name, hid_t type, hsize_t width, const void* data);
  void ensure_groups(const std::string& path);
  hid_t open_parent(const std::string& name, std::string& leaf);
  void discover_series();

  template <class F>
  auto guarded(F f) const -> decltype(f());

  std::string path_;
  h5::Handle file_;
  std::map<std::string, Series> series_;
};

// Puts the run file image `image` at `path` atomically: the bytes go to a temporary file
// beside it, `edit` (when given) changes that copy through a RunFile, and the copy is synced
// and renamed over `path`. Whatever instant the process dies, `path` holds its old bytes or
// the new file whole. Throws std::runtime_error naming the file.
void install_run_file(const std::string& path, const std::string& image,
                      const std::function<void(RunFile&)>& edit = nullptr);

}  // namespace moe
