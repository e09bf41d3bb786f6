// The run file: one HDF5 file per run. Scalar series (one value per step) and row series (one
// row of fixed width per step) are chunked, deflate-compressed, extendible datasets, appended
// as the run goes. Uses HDF5's C API; one process writes.
//
// Kill safety: the file is built in memory (HDF5's core driver, no backing store) and written
// to disk only as a whole image, through a temporary file that is fsync'ed and renamed over
// the path. HDF5 itself never writes the path, so the file on disk is always one complete,
// consistent image (the last one saved), whatever instant the process dies, and a failed
// write (full disk, quota, permissions) is one POSIX error naming the file that leaves the
// previous image in place. Checkpoints keep an image too (image()), and a resume starts from it.
// Every error throws std::runtime_error naming the file (and the OS error when there is one).
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "io/h5_util.hpp"

namespace moe {

class RunFile {
 public:
  enum class Mode { Create, Append };
  // Create starts an empty file (nothing is written to `path` before the first save);
  // Append reads the existing run file at `path` and finds its series.
  // Throws std::runtime_error naming the file on failure.
  RunFile(const std::string& path, Mode mode = Mode::Create);
  // A run file from `image` (the bytes of one), to be saved at `path`.
  RunFile(const std::string& path, const std::string& image);
  // Saves what changed since the last save (best effort: a failure here goes unreported; call
  // save() to know).
  ~RunFile();
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
  // The last value of a 1-D float64 series (NaN when it is empty or absent).
  double last_value(const std::string& dataset) const;
  void truncate(const std::map<std::string, std::int64_t>& rows);

  // Saves the file to disk when due: the first time, then at most once a second and with at
  // most ~5% of the time spent writing (a large file is saved less often).
  void flush();
  // Saves the file to disk now (atomically: temporary file, fsync, rename).
  void save();
  // The file's bytes: a complete HDF5 file (checkpoints keep it).
  std::string image();

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

  // Runs f; an exception from it is rethrown naming this run file.
  template <class F>
  auto guarded(F f) const -> decltype(f()) {
    try {
      return f();
    } catch (const std::exception& e) {
      throw std::runtime_error("run file '" + path_ + "': " + e.what());
    }
  }
  // "/a/b/c" -> parent "/a/b", leaf "c".
  static std::pair<std::string, std::string> split_path(const std::string& path);
  template <class Write>
  void write_attr(const std::string& name, Write write);
  template <class Read>
  auto read_attr(const std::string& name, Read read) const;
  void open_image(const std::string& image);

  std::string path_;
  h5::Handle file_;
  std::map<std::string, Series> series_;
  double last_save_ = -1;         // steady-clock seconds of the last save (-1: never saved)
  double last_save_seconds_ = 0;  // how long it took
  bool dirty_ = false;            // changed since the last save
};

}  // namespace moe
