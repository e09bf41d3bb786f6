#include "io/h5_util.hpp"

#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace moe::h5 {

namespace {

// HDF5's POSIX driver records a failed system call as "..., errno = N, error message = '...'"
// in the description of the innermost error.
herr_t find_errno(unsigned, const H5E_error2_t* err, void* data) {
  const char* at = err && err->desc ? std::strstr(err->desc, "errno = ") : nullptr;
  if (at) *static_cast<int*>(data) = std::atoi(at + 8);
  return 0;
}

}  // namespace

std::string os_error() {
  int err = 0;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, find_errno, &err);
  return err > 0 ? std::strerror(err) : std::string();
}

void check(herr_t st, const std::string& what) {
  if (st >= 0) return;
  const std::string os = os_error();
  throw std::runtime_error("HDF5 error: " + what + (os.empty() ? std::string() : ": " + os));
}

Handle utf8_string_type() {
  // Variable-length UTF-8: h5py reads these as str, h5dump prints them whole.
  Handle type = type_handle(H5Tcopy(H5T_C_S1));
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  return type;
}

namespace {
template <class Write>
void write_attr(hid_t obj, const std::string& name, hid_t type, Write write) {
  if (H5Aexists(obj, name.c_str()) > 0) H5Adelete(obj, name.c_str());
  const Handle space = space_handle(H5Screate(H5S_SCALAR));
  const Handle attr =
      attr_handle(H5Acreate2(obj, name.c_str(), type, space.get(), H5P_DEFAULT, H5P_DEFAULT));
  check(attr.get(), "create attribute " + name);
  check(write(attr.get()), "write attribute " + name);
}

Handle open_attr(hid_t obj, const std::string& name) {
  Handle a = attr_handle(H5Aopen(obj, name.c_str(), H5P_DEFAULT));
  if (!a.valid()) throw std::runtime_error("HDF5 error: no attribute " + name);
  return a;
}

Handle open_dataset(hid_t file, const std::string& name) {
  Handle d = dataset_handle(H5Dopen2(file, name.c_str(), H5P_DEFAULT));
  if (!d.valid()) throw std::runtime_error("HDF5 error: no dataset " + name);
  return d;
}
}  // namespace

void write_string_attr(hid_t obj, const std::string& name, const std::string& value) {
  const Handle type = utf8_string_type();
  const char* p = value.c_str();
  write_attr(obj, name, type.get(), [&](hid_t a) { return H5Awrite(a, type.get(), &p); });
}

void write_int_attr(hid_t obj, const std::string& name, std::int64_t value) {
  write_attr(obj, name, H5T_STD_I64LE,
             [&](hid_t a) { return H5Awrite(a, H5T_NATIVE_INT64, &value); });
}

void write_double_attr(hid_t obj, const std::string& name, double value) {
  write_attr(obj, name, H5T_IEEE_F64LE,
             [&](hid_t a) { return H5Awrite(a, H5T_NATIVE_DOUBLE, &value); });
}

bool has_attr(hid_t obj, const std::string& name) {
  return H5Aexists(obj, name.c_str()) > 0;
}

std::string read_string_attr(hid_t obj, const std::string& name) {
  const Handle a = open_attr(obj, name);
  const Handle ftype = type_handle(H5Aget_type(a.get()));
  check(ftype.get(), "type of attribute " + name);
  if (H5Tis_variable_str(ftype.get()) > 0) {
    const Handle type = utf8_string_type();
    char* p = nullptr;
    check(H5Aread(a.get(), type.get(), &p), "read attribute " + name);
    const std::string out = p ? p : "";
    const Handle space = space_handle(H5Aget_space(a.get()));
    H5Dvlen_reclaim(type.get(), space.get(), H5P_DEFAULT, &p);
    return out;
  }
  std::vector<char> buf(H5Tget_size(ftype.get()) + 1, '\0');
  check(H5Aread(a.get(), ftype.get(), buf.data()), "read attribute " + name);
  return buf.data();
}

std::int64_t read_int_attr(hid_t obj, const std::string& name) {
  const Handle a = open_attr(obj, name);
  std::int64_t v = 0;
  check(H5Aread(a.get(), H5T_NATIVE_INT64, &v), "read attribute " + name);
  return v;
}

double read_double_attr(hid_t obj, const std::string& name) {
  const Handle a = open_attr(obj, name);
  double v = 0;
  check(H5Aread(a.get(), H5T_NATIVE_DOUBLE, &v), "read attribute " + name);
  return v;
}

namespace {
void write_raw(hid_t file, const std::string& name, std::size_t n, const void* data, hid_t ftype,
               hid_t mtype) {
  hsize_t dims[1] = {n};
  const Handle space = space_handle(H5Screate_simple(1, dims, nullptr));
  const Handle d = dataset_handle(
      H5Dcreate2(file, name.c_str(), ftype, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  check(d.get(), "create dataset " + name);
  if (n > 0) check(H5Dwrite(d.get(), mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), "write " + name);
}

template <class T>
std::vector<T> read_vec(hid_t file, const std::string& name, hid_t mtype) {
  const Handle d = open_dataset(file, name);
  const Handle space = space_handle(H5Dget_space(d.get()));
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  std::vector<T> v(std::size_t(n > 0 ? n : 0));
  if (!v.empty())
    check(H5Dread(d.get(), mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), "read " + name);
  return v;
}
}  // namespace

void write_vector(hid_t file, const std::string& name, const std::vector<float>& v) {
  write_raw(file, name, v.size(), v.data(), H5T_IEEE_F32LE, H5T_NATIVE_FLOAT);
}
void write_vector(hid_t file, const std::string& name, const std::vector<std::int32_t>& v) {
  write_raw(file, name, v.size(), v.data(), H5T_STD_I32LE, H5T_NATIVE_INT32);
}
std::vector<float> read_floats(hid_t file, const std::string& name) {
  return read_vec<float>(file, name, H5T_NATIVE_FLOAT);
}
std::vector<std::int32_t> read_ints(hid_t file, const std::string& name) {
  return read_vec<std::int32_t>(file, name, H5T_NATIVE_INT32);
}

void write_bytes(hid_t file, const std::string& name, const std::string& bytes) {
  write_raw(file, name, bytes.size(), bytes.data(), H5T_STD_U8LE, H5T_NATIVE_UCHAR);
}
std::string read_bytes(hid_t file, const std::string& name) {
  const auto v = read_vec<unsigned char>(file, name, H5T_NATIVE_UCHAR);
  return std::string(v.begin(), v.end());
}
bool has_dataset(hid_t file, const std::string& name) {
  return H5Lexists(file, name.c_str(), H5P_DEFAULT) > 0;
}

void write_string_dataset(hid_t file, const std::string& name, const std::string& text) {
  const Handle type = utf8_string_type();
  const Handle space = space_handle(H5Screate(H5S_SCALAR));
  const Handle d = dataset_handle(H5Dcreate2(file, name.c_str(), type.get(), space.get(),
                                             H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  check(d.get(), "create dataset " + name);
  const char* p = text.c_str();
  check(H5Dwrite(d.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &p), "write " + name);
}

std::string read_string_dataset(hid_t file, const std::string& name) {
  const Handle d = open_dataset(file, name);
  const Handle type = utf8_string_type();
  char* p = nullptr;
  check(H5Dread(d.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &p), "read " + name);
  const std::string out = p ? p : "";
  const Handle space = space_handle(H5Dget_space(d.get()));
  H5Dvlen_reclaim(type.get(), space.get(), H5P_DEFAULT, &p);
  return out;
}

}  // namespace moe::h5
