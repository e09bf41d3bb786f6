#include "io/h5_util.hpp"

#include <stdexcept>

namespace moe::h5 {

void check(herr_t st, const std::string& what) {
  if (st < 0) throw std::runtime_error("HDF5 error: " + what);
}

hid_t utf8_string_type() {
  // Variable-length UTF-8: h5py reads these as str, h5dump prints them whole.
  hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5T_CSET_UTF8);
  return type;
}

namespace {
template <class Write>
void write_attr(hid_t obj, const std::string& name, hid_t type, Write write) {
  if (H5Aexists(obj, name.c_str()) > 0) H5Adelete(obj, name.c_str());
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t attr = H5Acreate2(obj, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT);
  H5Sclose(space);
  check(attr, "create attribute " + name);
  const herr_t st = write(attr);
  H5Aclose(attr);
  check(st, "write attribute " + name);
}

hid_t open_attr(hid_t obj, const std::string& name) {
  hid_t a = H5Aopen(obj, name.c_str(), H5P_DEFAULT);
  if (a < 0) throw std::runtime_error("HDF5 error: no attribute " + name);
  return a;
}
}  // namespace

void write_string_attr(hid_t obj, const std::string& name, const std::string& value) {
  hid_t type = utf8_string_type();
  const char* p = value.c_str();
  write_attr(obj, name, type, [&](hid_t a) { return H5Awrite(a, type, &p); });
  H5Tclose(type);
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
  hid_t a = open_attr(obj, name);
  hid_t ftype = H5Aget_type(a);
  std::string out;
  if (H5Tis_variable_str(ftype) > 0) {
    hid_t type = utf8_string_type();
    char* p = nullptr;
    check(H5Aread(a, type, &p), "read attribute " + name);
    if (p) out = p;
    hid_t space = H5Aget_space(a);
    H5Dvlen_reclaim(type, space, H5P_DEFAULT, &p);
    H5Sclose(space);
    H5Tclose(type);
  } else {
    std::vector<char> buf(H5Tget_size(ftype) + 1, '\0');
    check(H5Aread(a, ftype, buf.data()), "read attribute " + name);
    out = buf.data();
  }
  H5Tclose(ftype);
  H5Aclose(a);
  return out;
}

std::int64_t read_int_attr(hid_t obj, const std::string& name) {
  hid_t a = open_attr(obj, name);
  std::int64_t v = 0;
  const herr_t st = H5Aread(a, H5T_NATIVE_INT64, &v);
  H5Aclose(a);
  check(st, "read attribute " + name);
  return v;
}

double read_double_attr(hid_t obj, const std::string& name) {
  hid_t a = open_attr(obj, name);
  double v = 0;
  const herr_t st = H5Aread(a, H5T_NATIVE_DOUBLE, &v);
  H5Aclose(a);
  check(st, "read attribute " + name);
  return v;
}

namespace {
template <class T>
void write_vec(hid_t file, const std::string& name, const std::vector<T>& v, hid_t ftype,
               hid_t mtype) {
  hsize_t dims[1] = {v.size()};
  hid_t space = H5Screate_simple(1, dims, nullptr);
  hid_t d = H5Dcreate2(file, name.c_str(), ftype, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Sclose(space);
  check(d, "create dataset " + name);
  const herr_t st = v.empty() ? 0 : H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
  H5Dclose(d);
  check(st, "write dataset " + name);
}

template <class T>
std::vector<T> read_vec(hid_t file, const std::string& name, hid_t mtype) {
  hid_t d = H5Dopen2(file, name.c_str(), H5P_DEFAULT);
  if (d < 0) throw std::runtime_error("HDF5 error: no dataset " + name);
  hid_t space = H5Dget_space(d);
  const hssize_t n = H5Sget_simple_extent_npoints(space);
  H5Sclose(space);
  std::vector<T> v(std::size_t(n > 0 ? n : 0));
  const herr_t st = v.empty() ? 0 : H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
  H5Dclose(d);
  check(st, "read dataset " + name);
  return v;
}
}  // namespace

void write_vector(hid_t file, const std::string& name, const std::vector<float>& v) {
  write_vec(file, name, v, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT);
}
void write_vector(hid_t file, const std::string& name, const std::vector<std::int32_t>& v) {
  write_vec(file, name, v, H5T_STD_I32LE, H5T_NATIVE_INT32);
}
std::vector<float> read_floats(hid_t file, const std::string& name) {
  return read_vec<float>(file, name, H5T_NATIVE_FLOAT);
}
std::vector<std::int32_t> read_ints(hid_t file, const std::string& name) {
  return read_vec<std::int32_t>(file, name, H5T_NATIVE_INT32);
}

void write_string_dataset(hid_t file, const std::string& name, const std::string& text) {
  hid_t type = utf8_string_type();
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t d = H5Dcreate2(file, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Sclose(space);
  check(d, "create dataset " + name);
  const char* p = text.c_str();
  const herr_t st = H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, &p);
  H5Dclose(d);
  H5Tclose(type);
  check(st, "write dataset " + name);
}

std::string read_string_dataset(hid_t file, const std::string& name) {
  hid_t d = H5Dopen2(file, name.c_str(), H5P_DEFAULT);
  if (d < 0) throw std::runtime_error("HDF5 error: no dataset " + name);
  hid_t type = utf8_string_type();
  char* p = nullptr;
  const herr_t st = H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, &p);
  std::string out = p ? p : "";
  hid_t space = H5Dget_space(d);
  H5Dvlen_reclaim(type, space, H5P_DEFAULT, &p);
  H5Sclose(space);
  H5Tclose(type);
  H5Dclose(d);
  check(st, "read dataset " + name);
  return out;
}

}  // namespace moe::h5
