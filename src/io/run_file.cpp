#include "io/run_file.hpp"

#include <algorithm>
#include <stdexcept>

#include "io/h5_util.hpp"

namespace moe {
namespace {

// Splits "/a/b/c" into parent "/a/b" and leaf "c".
std::pair<std::string, std::string> split_path(const std::string& path) {
  const auto pos = path.rfind('/');
  if (pos == std::string::npos) return {"/", path};
  return {pos == 0 ? "/" : path.substr(0, pos), path.substr(pos + 1)};
}

}  // namespace

RunFile::RunFile(const std::string& path, Mode mode) : path_(path) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // errors are reported by us, in one line
  if (mode == Mode::Create) {
    file_ = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file_ < 0) throw std::runtime_error("cannot create run file '" + path + "'");
  } else {
    file_ = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    if (file_ < 0) throw std::runtime_error("cannot open run file '" + path + "'");
    discover_series();
  }
}

RunFile::~RunFile() {
  for (auto& kv : series_) H5Dclose(kv.second.dset);
  if (file_ >= 0) H5Fclose(file_);
}

void RunFile::discover_series() {
  // Every chunked dataset with an unlimited first axis is a series.
  struct Found {
    std::vector<std::string> names;
  } found;
  auto visit = [](hid_t, const char* name, const H5O_info_t* info, void* data) -> herr_t {
    if (info->type == H5O_TYPE_DATASET)
      static_cast<Found*>(data)->names.push_back(std::string("/") + name);
    return 0;
  };
  h5::check(H5Ovisit(file_, H5_INDEX_NAME, H5_ITER_NATIVE, visit, &found), "list " + path_);
  for (const std::string& name : found.names) {
    hid_t d = H5Dopen2(file_, name.c_str(), H5P_DEFAULT);
    hid_t space = H5Dget_space(d);
    const int rank = H5Sget_simple_extent_ndims(space);
    hsize_t dims[2] = {0, 0}, maxdims[2] = {0, 0};
    if (rank >= 1 && rank <= 2) H5Sget_simple_extent_dims(space, dims, maxdims);
    H5Sclose(space);
    if (rank >= 1 && rank <= 2 && maxdims[0] == H5S_UNLIMITED) {
      series_[name] = Series{d, dims[0], rank == 2 ? dims[1] : 0};
    } else {
      H5Dclose(d);
    }
  }
}

void RunFile::ensure_groups(const std::string& path) {
  std::string sofar;
  std::size_t start = 1;
  while (start <= path.size()) {
    auto end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    if (end > start) {
      sofar += "/" + path.substr(start, end - start);
      if (H5Lexists(file_, sofar.c_str(), H5P_DEFAULT) <= 0) {
        hid_t g = H5Gcreate2(file_, sofar.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        h5::check(g, "create group " + sofar);
        H5Gclose(g);
      }
    }
    start = end + 1;
  }
}

hid_t RunFile::open_parent(const std::string& name, std::string& leaf) {
  auto [parent, l] = split_path(name);
  ensure_groups(parent);
  leaf = l;
  hid_t obj = H5Oopen(file_, parent.c_str(), H5P_DEFAULT);
  h5::check(obj, "open " + parent);
  return obj;
}

void RunFile::set_attr(const std::string& name, const std::string& value) {
  std::string leaf;
  hid_t obj = open_parent(name, leaf);
  h5::write_string_attr(obj, leaf, value);
  H5Oclose(obj);
}
void RunFile::set_attr(const std::string& name, double value) {
  std::string leaf;
  hid_t obj = open_parent(name, leaf);
  h5::write_double_attr(obj, leaf, value);
  H5Oclose(obj);
}
void RunFile::set_attr(const std::string& name, std::int64_t value) {
  std::string leaf;
  hid_t obj = open_parent(name, leaf);
  h5::write_int_attr(obj, leaf, value);
  H5Oclose(obj);
}
std::string RunFile::string_attr(const std::string& name) const {
  auto [parent, leaf] = split_path(name);
  hid_t obj = H5Oopen(file_, parent.c_str(), H5P_DEFAULT);
  h5::check(obj, "open " + parent);
  std::string v = h5::read_string_attr(obj, leaf);
  H5Oclose(obj);
  return v;
}
std::int64_t RunFile::int_attr(const std::string& name) const {
  auto [parent, leaf] = split_path(name);
  hid_t obj = H5Oopen(file_, parent.c_str(), H5P_DEFAULT);
  h5::check(obj, "open " + parent);
  const std::int64_t v = h5::read_int_attr(obj, leaf);
  H5Oclose(obj);
  return v;
}

void RunFile::write_text(const std::string& dataset, const std::string& text) {
  ensure_groups(split_path(dataset).first);
  if (H5Lexists(file_, dataset.c_str(), H5P_DEFAULT) > 0)
    H5Ldelete(file_, dataset.c_str(), H5P_DEFAULT);
  h5::write_string_dataset(file_, dataset, text);
}

void RunFile::write_array(const std::string& dataset, const std::vector<double>& values) {
  ensure_groups(split_path(dataset).first);
  if (H5Lexists(file_, dataset.c_str(), H5P_DEFAULT) > 0)
    H5Ldelete(file_, dataset.c_str(), H5P_DEFAULT);
  hsize_t dims[1] = {values.size()};
  hid_t space = H5Screate_simple(1, dims, nullptr);
  hid_t d = H5Dcreate2(file_, dataset.c_str(), H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT,
                       H5P_DEFAULT);
  H5Sclose(space);
  h5::check(d, "create dataset " + dataset);
  const herr_t st =
      values.empty() ? 0
                     : H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
  H5Dclose(d);
  h5::check(st, "write " + dataset);
}

RunFile::Series& RunFile::series(const std::string& name, hid_t type, hsize_t width) {
  auto it = series_.find(name);
  if (it != series_.end()) {
    if (it->second.width != width)
      throw std::runtime_error("HDF5 series " + name + " appended with a different width");
    return it->second;
  }
  ensure_groups(split_path(name).first);
  const int rank = width == 0 ? 1 : 2;
  hsize_t dims[2] = {0, width}, maxdims[2] = {H5S_UNLIMITED, width};
  // Chunks of ~32-64 KiB: small enough to flush often, big enough to compress well.
  hsize_t chunk[2] = {width == 0 ? 4096 : std::max<hsize_t>(1, 8192 / width), width};
  hid_t space = H5Screate_simple(rank, dims, maxdims);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(dcpl, rank, chunk);
  H5Pset_deflate(dcpl, 4);
  hid_t d = H5Dcreate2(file_, name.c_str(), type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  H5Pclose(dcpl);
  H5Sclose(space);
  h5::check(d, "create dataset " + name);
  return series_.emplace(name, Series{d, 0, width}).first->second;
}

void RunFile::append_raw(const std::string& name, hid_t type, hsize_t width, const void* data) {
  const hid_t file_type = H5Tequal(type, H5T_NATIVE_DOUBLE) > 0 ? H5T_IEEE_F64LE : H5T_STD_I64LE;
  Series& s = series(name, file_type, width);
  hsize_t newdims[2] = {s.rows + 1, width};
  h5::check(H5Dset_extent(s.dset, newdims), "extend " + name);
  hid_t fspace = H5Dget_space(s.dset);
  hsize_t start[2] = {s.rows, 0}, count[2] = {1, width};
  H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, nullptr, count, nullptr);
  hsize_t mdims[1] = {width == 0 ? 1 : width};
  hid_t mspace = H5Screate_simple(1, mdims, nullptr);
  const herr_t st = H5Dwrite(s.dset, type, mspace, fspace, H5P_DEFAULT, data);
  H5Sclose(mspace);
  H5Sclose(fspace);
  h5::check(st, "append " + name);
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

std::map<std::string, std::int64_t> RunFile::series_rows() const {
  std::map<std::string, std::int64_t> out;
  for (const auto& [name, s] : series_) out[name] = std::int64_t(s.rows);
  return out;
}

void RunFile::truncate(const std::map<std::string, std::int64_t>& rows) {
  for (auto& [name, s] : series_) {
    auto it = rows.find(name);
    const hsize_t keep = it == rows.end() ? 0 : hsize_t(std::min<std::int64_t>(it->second, s.rows));
    if (keep == s.rows) continue;
    hsize_t dims[2] = {keep, s.width};
    h5::check(H5Dset_extent(s.dset, dims), "truncate " + name);
    s.rows = keep;
  }
}

void RunFile::flush() {
  h5::check(H5Fflush(file_, H5F_SCOPE_GLOBAL), "flush " + path_);
}

}  // namespace moe
