// The run file's series: discovery on open, creation on first append, appends, truncation.
#include <algorithm>
#include <limits>
#include <stdexcept>

#include "io/run_file.hpp"

namespace moe {

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
  h5::check(H5Ovisit(file_.get(), H5_INDEX_NAME, H5_ITER_NATIVE, visit, &found), "list datasets");
  for (const std::string& name : found.names) {
    h5::Handle d = h5::dataset_handle(H5Dopen2(file_.get(), name.c_str(), H5P_DEFAULT));
    h5::check(d.get(), "open " + name);
    const h5::Handle space = h5::space_handle(H5Dget_space(d.get()));
    const int rank = H5Sget_simple_extent_ndims(space.get());
    hsize_t dims[2] = {0, 0}, maxdims[2] = {0, 0};
    if (rank >= 1 && rank <= 2) H5Sget_simple_extent_dims(space.get(), dims, maxdims);
    if (rank >= 1 && rank <= 2 && maxdims[0] == H5S_UNLIMITED)
      series_[name] = Series{std::move(d), dims[0], rank == 2 ? dims[1] : 0};
  }
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
  const h5::Handle space = h5::space_handle(H5Screate_simple(rank, dims, maxdims));
  const h5::Handle dcpl = h5::plist_handle(H5Pcreate(H5P_DATASET_CREATE));
  H5Pset_chunk(dcpl.get(), rank, chunk);
  H5Pset_deflate(dcpl.get(), 4);
  h5::Handle d = h5::dataset_handle(H5Dcreate2(file_.get(), name.c_str(), type, space.get(),
                                               H5P_DEFAULT, dcpl.get(), H5P_DEFAULT));
  h5::check(d.get(), "create dataset " + name);
  return series_.emplace(name, Series{std::move(d), 0, width}).first->second;
}

void RunFile::append_raw(const std::string& name, hid_t type, hsize_t width, const void* data) {
  dirty_ = true;
  guarded([&] {
    const hid_t file_type = H5Tequal(type, H5T_NATIVE_DOUBLE) > 0 ? H5T_IEEE_F64LE : H5T_STD_I64LE;
    Series& s = series(name, file_type, width);
    hsize_t newdims[2] = {s.rows + 1, width};
    h5::check(H5Dset_extent(s.dset.get(), newdims), "extend " + name);
    const h5::Handle fspace = h5::space_handle(H5Dget_space(s.dset.get()));
    hsize_t start[2] = {s.rows, 0}, count[2] = {1, width};
    H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start, nullptr, count, nullptr);
    hsize_t mdims[1] = {width == 0 ? 1 : width};
    const h5::Handle mspace = h5::space_handle(H5Screate_simple(1, mdims, nullptr));
    h5::check(H5Dwrite(s.dset.get(), type, mspace.get(), fspace.get(), H5P_DEFAULT, data),
              "append " + name);
    s.rows += 1;
  });
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

double RunFile::last_value(const std::string& dataset) const {
  const auto it = series_.find(dataset);
  if (it == series_.end() || it->second.rows == 0 || it->second.width != 0)
    return std::numeric_limits<double>::quiet_NaN();
  return guarded([&] {
    const Series& s = it->second;
    const h5::Handle fspace = h5::space_handle(H5Dget_space(s.dset.get()));
    hsize_t start[1] = {s.rows - 1}, count[1] = {1};
    H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start, nullptr, count, nullptr);
    const h5::Handle mspace = h5::space_handle(H5Screate_simple(1, count, nullptr));
    double v = 0;
    h5::check(H5Dread(s.dset.get(), H5T_NATIVE_DOUBLE, mspace.get(), fspace.get(), H5P_DEFAULT, &v),
              "read " + dataset);
    return v;
  });
}

void RunFile::truncate(const std::map<std::string, std::int64_t>& rows) {
  dirty_ = true;
  guarded([&] {
    for (auto& [name, s] : series_) {
      auto it = rows.find(name);
      const hsize_t keep =
          it == rows.end() ? 0 : hsize_t(std::min<std::int64_t>(it->second, s.rows));
      if (keep == s.rows) continue;
      hsize_t dims[2] = {keep, s.width};
      h5::check(H5Dset_extent(s.dset.get(), dims), "truncate " + name);
      s.rows = keep;
    }
  });
}

}  // namespace moe
