// The run file: one HDF5 file per run. Scalar series (one value per step) and row series (one
// row of fixed width per step) are chunked, deflate-compressed, extendible datasets, appended
// as the run goes and flushed at evaluations, so a run that dies leaves every flushed step.
// Uses HDF5's C API with the serial (sec2) driver; only one process writes.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace moe {

class RunFile {
 public:
  // Creates (truncates) `path`. Throws std::runtime_error naming the file on failure.
  explicit RunFile(const std::string& path);
  ~RunFile();
  RunFile(const RunFile&) = delete;
  RunFile& operator=(const RunFile&) = delete;

  const std::string& path() const { return path_; }

  // Root (or group, for "/a/b" names: attribute b on group /a) attributes.
  void set_attr(const std::string& name, const std::string& value);
  void set_attr(const std::string& name, double value);
  void set_attr(const std::string& name, std::int64_t value);

  // A whole string as a scalar dataset (the config text).
  void write_text(const std::string& dataset, const std::string& text);

  // Appends to 1-D series of float64 or int64 (created on first use).
  void append(const std::string& dataset, double value);
  void append(const std::string& dataset, std::int64_t value);
  // Appends one row to a 2-D [rows x width] series (created on first use with this width).
  void append_row(const std::string& dataset, const std::vector<std::int64_t>& row);
  void append_row(const std::string& dataset, const std::vector<double>& row);

  void flush();

 private:
  struct Series {
    hid_t dset = -1;
    hsize_t rows = 0, width = 0;  // width 0: 1-D
  };
  Series& series(const std::string& name, hid_t type, hsize_t width);
  void append_raw(const std::string& name, hid_t type, hsize_t width, const void* data);
  hid_t ensure_parent_groups(const std::string& path);

  std::string path_;
  hid_t file_ = -1;
  std::map<std::string, Series> series_;
};

}  // namespace moe
