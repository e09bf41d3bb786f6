#include "io/run_file.hpp"

#include <stdexcept>

namespace moe {
namespace {

void check(herr_t st, const std::string& what) {
  if (st < 0) throw std::runtime_error("HDF5 error: " + what);
}

// Splits "/a/b/c" into parent "/a/b" and leaf "c".
std::pair<std::string, std::string> split_path(const std::string& path) {
  const auto pos = path.rfind('/');
  if (pos == std::string::npos) return {"/", path};
  return {pos == 0 ? "/" : path.substr(0, pos), path.substr(pos + 1)};
}

// Variable-length UTF-8: h5py reads these as str, h5dump prints them whole.
hid_t utf8_string_type() {
  hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5T_CSET_UTF8);
  return type;
}

}  // namespace

RunFile::RunFile(const std::string& path) : path_(path) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // we report errors ourselves, in one line
  file_ = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file_ < 0) throw std::runtime_error("cannot create run file '" + path + "'");
}

RunFile::~RunFile() {
  for (auto& kv : series_) H5Dclose(kv.second.dset);
  if (file_ >= 0) H5Fclose(file_);
}

hid_t RunFile::ensure_parent_groups(const std::string& path) {
  // Creates every missing group on the way to `path`'s parent; returns the parent (open).
  const std::string parent = split_path(path).first;
  std::string sofar;
  std::size_t start = 1;
  while (start <= parent.size()) {
    auto end = parent.find('/', start);
    if (end == std::string::npos) end = parent.size();
    if (end > start) {
      sofar += "/" + parent.substr(start, end - start);
      if (H5Lexists(file_, sofar.c_str(), H5P_DEFAULT) <= 0) {
        hid_t g = H5Gcreate2(file_, sofar.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (g < 0) throw std::runtime_error("HDF5 error: cannot create group " + sofar);
        H5Gclose(g);
      }
    }
    start = end + 1;
  }
  return H5Oopen(file_, parent.c_str(), H5P_DEFAULT);
}

namespace {
template <class Write>
void write_attr(hid_t file, const std::string& name, hid_t type, hid_t space, Write write) {
  const auto [parent, leaf] = split_path(name);
  hid_t obj = H5Oopen(file, parent.c_str(), H5P_DEFAULT);
  if (obj < 0) throw std::runtime_error("HDF5 error: no object " + parent);
  if (H5Aexists(obj, leaf.c_str()) > 0) H5Adelete(obj, leaf.c_str());
  hid_t attr = H5Acreate2(obj, leaf.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT);
  check(attr, "create attribute " + name);
  check(write(attr), "write attribute " + name);
  H5Aclose(attr);
  H5Oclose(obj);
}
}  // namespace

void RunFile::set_attr(const std::string& name, const std::string& value) {
  hid_t type = utf8_string_type();
  hid_t space = H5Screate(H5S_SCALAR);
  const char* ptr = value.c_str();
  write_attr(file_, name, type, space, [&](hid_t a) { return H5Awrite(a, type, &ptr); });
  H5Sclose(space);
  H5Tclose(type);
}

void RunFile::set_attr(const std::string& name, double value) {
  hid_t space = H5Screate(H5S_SCALAR);
  write_attr(file_, name, H5T_IEEE_F64LE, space,
             [&](hid_t a) { return H5Awrite(a, H5T_NATIVE_DOUBLE, &value); });
  H5Sclose(space);
}

void RunFile::set_attr(const std::string& name, std::int64_t value) {
  hid_t space = H5Screate(H5S_SCALAR);
  write_attr(file_, name, H5T_STD_I64LE, space,
             [&](hid_t a) { return H5Awrite(a, H5T_NATIVE_INT64, &value); });
  H5Sclose(space);
}

void RunFile::write_text(const std::string& dataset, const std::string& text) {
  hid_t parent = ensure_parent_groups(dataset);
  H5Oclose(parent);
  hid_t type = utf8_string_type();
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t d = H5Dcreate2(file_, dataset.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  check(d, "create dataset " + dataset);
  const char* ptr = text.c_str();
  check(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, &ptr), "write " + dataset);
  H5Dclose(d);
  H5Sclose(space);
  H5Tclose(type);
}

RunFile::Series& RunFile::series(const std::string& name, hid_t type, hsize_t width) {
  auto it = series_.find(name);
  if (it != series_.end()) {
    if (it->second.width != width)
      throw std::runtime_error("HDF5 series " + name + " appended with a different width");
    return it->second;
  }
  hid_t parent = ensure_parent_groups(name);
  H5Oclose(parent);
  const int rank = width == 0 ? 1 : 2;
  hsize_t dims[2] = {0, width}, maxdims[2] = {H5S_UNLIMITED, width};
  // Chunks of ~64 KiB rows: small enough to flush often, big enough to compress well.
  hsize_t chunk[2] = {width == 0 ? 4096 : std::max<hsize_t>(1, 8192 / width), width};
  hid_t space = H5Screate_simple(rank, dims, maxdims);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(dcpl, rank, chunk);
  H5Pset_deflate(dcpl, 4);
  hid_t d = H5Dcreate2(file_, name.c_str(), type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  H5Pclose(dcpl);
  H5Sclose(space);
  check(d, "create dataset " + name);
  Series s;
  s.dset = d;
  s.width = width;
  return series_.emplace(name, s).first->second;
}

void RunFile::append_raw(const std::string& name, hid_t type, hsize_t width, const void* data) {
  hid_t file_type = H5Tequal(type, H5T_NATIVE_DOUBLE) > 0 ? H5T_IEEE_F64LE : H5T_STD_I64LE;
  Series& s = series(name, file_type, width);
  hsize_t newdims[2] = {s.rows + 1, width};
  check(H5Dset_extent(s.dset, newdims), "extend " + name);
  hid_t fspace = H5Dget_space(s.dset);
  hsize_t start[2] = {s.rows, 0}, count[2] = {1, width};
  H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, nullptr, count, nullptr);
  hsize_t mdims[1] = {width == 0 ? 1 : width};
  hid_t mspace = H5Screate_simple(1, mdims, nullptr);
  check(H5Dwrite(s.dset, type, mspace, fspace, H5P_DEFAULT, data), "append " + name);
  H5Sclose(mspace);
  H5Sclose(fspace);
  s.rows += 1;
}

void RunFile::append(const std::string& dataset, double value) {
  append_raw(dataset, H5T_NATIVE_DOUBLE, 0, &value);
}
void RunFile::append(const std::string& dataset, std::int64_t value) {
  append_raw(dataset, H5T_NATIVE_INT64, 0, &value);
}
void RunFile::append_row(const std::string& dataset, const std::vector<std::int64_t>& row) {
  append_raw(dataset, H5T_NATIVE_INT64, row.size(), row.data());
}
void RunFile::append_row(const std::string& dataset, const std::vector<double>& row) {
  append_raw(dataset, H5T_NATIVE_DOUBLE, row.size(), row.data());
}

void RunFile::flush() { check(H5Fflush(file_, H5F_SCOPE_GLOBAL), "flush " + path_); }

}  // namespace moe
