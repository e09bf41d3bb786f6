// Small HDF5 helpers shared by the run file, its reader and the checkpoints: an owning handle
// for every HDF5 identifier (so an exception between open and close leaks nothing) and
// attribute / dataset read-write helpers that throw std::runtime_error in one line.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

namespace moe::h5 {

// Owns one HDF5 identifier and closes it with its matching close function (H5Fclose,
// H5Dclose, ...) when it goes out of scope. Move-only.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer close) : id_(id), close_(close) {}
  ~Handle() { reset(); }
  Handle(Handle&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_;
      close_ = o.close_;
      o.id_ = -1;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  // Closes now; returns the close function's status (0 when nothing was open).
  herr_t reset() {
    herr_t st = 0;
    if (id_ >= 0 && close_) st = close_(id_);
    id_ = -1;
    return st;
  }

 private:
  hid_t id_ = -1;
  Closer close_ = nullptr;
};

inline Handle file_handle(hid_t id) {
  return Handle(id, H5Fclose);
}
inline Handle dataset_handle(hid_t id) {
  return Handle(id, H5Dclose);
}
inline Handle space_handle(hid_t id) {
  return Handle(id, H5Sclose);
}
inline Handle type_handle(hid_t id) {
  return Handle(id, H5Tclose);
}
inline Handle attr_handle(hid_t id) {
  return Handle(id, H5Aclose);
}
inline Handle plist_handle(hid_t id) {
  return Handle(id, H5Pclose);
}
inline Handle object_handle(hid_t id) {
  return Handle(id, H5Oclose);
}
inline Handle group_handle(hid_t id) {
  return Handle(id, H5Gclose);
}

// The operating system's reason for the last failed HDF5 call (e.g. "No space left on
// device"), read from HDF5's error stack; "" when the failure was not a system call's.
std::string os_error();
// Throws std::runtime_error("HDF5 error: what[: OS reason]") when st < 0.
void check(herr_t st, const std::string& what);
// Variable-length UTF-8 string type.
Handle utf8_string_type();

void write_string_attr(hid_t obj, const std::string& name, const std::string& value);
void write_int_attr(hid_t obj, const std::string& name, std::int64_t value);
void write_double_attr(hid_t obj, const std::string& name, double value);
bool has_attr(hid_t obj, const std::string& name);
std::string read_string_attr(hid_t obj, const std::string& name);
std::int64_t read_int_attr(hid_t obj, const std::string& name);
double read_double_attr(hid_t obj, const std::string& name);

// Whole 1-D datasets (contiguous, for checkpoints).
void write_vector(hid_t file, const std::string& name, const std::vector<float>& v);
void write_vector(hid_t file, const std::string& name, const std::vector<std::int32_t>& v);
std::vector<float> read_floats(hid_t file, const std::string& name);
std::vector<std::int32_t> read_ints(hid_t file, const std::string& name);
// Opaque bytes (a run file's image inside a checkpoint).
void write_bytes(hid_t file, const std::string& name, const std::string& bytes);
std::string read_bytes(hid_t file, const std::string& name);
bool has_dataset(hid_t file, const std::string& name);
void write_string_dataset(hid_t file, const std::string& name, const std::string& text);
std::string read_string_dataset(hid_t file, const std::string& name);

}  // namespace moe::h5
