#include "io/run_file.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <limits>
#include <stdexcept>

#include "io/posix_file.hpp"

namespace moe {
namespace {

// Splits "/a/b/c" into parent "/a/b" and leaf "c".
std::pair<std::string, std::string> split_path(const std::string& path) {
  const auto pos = path.rfind('/');
  if (pos == std::string::npos) return {"/", path};
  return {pos == 0 ? "/" : path.substr(0, pos), path.substr(pos + 1)};
}

double seconds_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The name HDF5 knows an in-memory file by. The core driver refuses to load an image under the
// name of a file that exists on disk, and takes two files of one name for the same file; a
// fresh name where no file can exist (/proc/self does not take new files) avoids both.
std::string memory_name() {
  static int counter = 0;
  return "/proc/self/moe-run-file-" + std::to_string(++counter);
}

}  // namespace

// Every HDF5 failure names the run file it happened in.
template <class F>
auto RunFile::guarded(F f) const -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& e) {
    throw std::runtime_error("run file '" + path_ + "': " + e.what());
  }
}

RunFile::RunFile(const std::string& path, Mode mode) : path_(path) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // errors are reported by us, in one line
  if (mode == Mode::Append) {
    open_image(read_file_bytes(path));
    return;
  }
  const h5::Handle fapl = h5::plist_handle(H5Pcreate(H5P_FILE_ACCESS));
  H5Pset_fapl_core(fapl.get(), 1 << 20, /*backing_store=*/0);
  file_ = h5::file_handle(H5Fcreate(memory_name().c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()));
  if (!file_.valid()) throw std::runtime_error("cannot create run file '" + path + "'");
}

RunFile::RunFile(const std::string& path, const std::string& image) : path_(path) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  open_image(image);
}

RunFile::~RunFile() {
  if (!dirty_ || !file_.valid()) return;
  try {
    save();
  } catch (const std::exception&) {
  }
}

void RunFile::open_image(const std::string& image) {
  const h5::Handle fapl = h5::plist_handle(H5Pcreate(H5P_FILE_ACCESS));
  H5Pset_fapl_core(fapl.get(), 1 << 20, /*backing_store=*/0);
  // HDF5 copies the image into its own buffer.
  if (H5Pset_file_image(fapl.get(), const_cast<char*>(image.data()), image.size()) < 0)
    throw std::runtime_error("run file '" + path_ + "': cannot load its image");
  file_ = h5::file_handle(H5Fopen(memory_name().c_str(), H5F_ACC_RDWR, fapl.get()));
  if (!file_.valid())
    throw std::runtime_error("run file '" + path_ + "' is not a readable HDF5 file");
  guarded([&] { discover_series(); });
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

void RunFile::ensure_groups(const std::string& path) {
  std::string sofar;
  std::size_t start = 1;
  while (start <= path.size()) {
    auto end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    if (end > start) {
      sofar += "/" + path.substr(start, end - start);
      if (H5Lexists(file_.get(), sofar.c_str(), H5P_DEFAULT) <= 0) {
        const h5::Handle g = h5::group_handle(
            H5Gcreate2(file_.get(), sofar.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
        h5::check(g.get(), "create group " + sofar);
      }
    }
    start = end + 1;
  }
}

hid_t RunFile::open_parent(const std::string& name, std::string& leaf) {
  auto [parent, l] = split_path(name);
  ensure_groups(parent);
  leaf = l;
  const hid_t obj = H5Oopen(file_.get(), parent.c_str(), H5P_DEFAULT);
  h5::check(obj, "open " + parent);
  return obj;
}

void RunFile::set_attr(const std::string& name, const std::string& value) {
  dirty_ = true;
  guarded([&] {
    std::string leaf;
    const h5::Handle obj = h5::object_handle(open_parent(name, leaf));
    h5::write_string_attr(obj.get(), leaf, value);
  });
}
void RunFile::set_attr(const std::string& name, double value) {
  dirty_ = true;
  guarded([&] {
    std::string leaf;
    const h5::Handle obj = h5::object_handle(open_parent(name, leaf));
    h5::write_double_attr(obj.get(), leaf, value);
  });
}
void RunFile::set_attr(const std::string& name, std::int64_t value) {
  dirty_ = true;
  guarded([&] {
    std::string leaf;
    const h5::Handle obj = h5::object_handle(open_parent(name, leaf));
    h5::write_int_attr(obj.get(), leaf, value);
  });
}
std::string RunFile::string_attr(const std::string& name) const {
  return guarded([&] {
    auto [parent, leaf] = split_path(name);
    const h5::Handle obj = h5::object_handle(H5Oopen(file_.get(), parent.c_str(), H5P_DEFAULT));
    h5::check(obj.get(), "open " + parent);
    return h5::read_string_attr(obj.get(), leaf);
  });
}
std::int64_t RunFile::int_attr(const std::string& name) const {
  return guarded([&] {
    auto [parent, leaf] = split_path(name);
    const h5::Handle obj = h5::object_handle(H5Oopen(file_.get(), parent.c_str(), H5P_DEFAULT));
    h5::check(obj.get(), "open " + parent);
    return h5::read_int_attr(obj.get(), leaf);
  });
}

void RunFile::write_text(const std::string& dataset, const std::string& text) {
  dirty_ = true;
  guarded([&] {
    ensure_groups(split_path(dataset).first);
    if (H5Lexists(file_.get(), dataset.c_str(), H5P_DEFAULT) > 0)
      h5::check(H5Ldelete(file_.get(), dataset.c_str(), H5P_DEFAULT), "replace " + dataset);
    h5::write_string_dataset(file_.get(), dataset, text);
  });
}

void RunFile::write_array(const std::string& dataset, const std::vector<double>& values) {
  dirty_ = true;
  guarded([&] {
    ensure_groups(split_path(dataset).first);
    if (H5Lexists(file_.get(), dataset.c_str(), H5P_DEFAULT) > 0)
      h5::check(H5Ldelete(file_.get(), dataset.c_str(), H5P_DEFAULT), "replace " + dataset);
    hsize_t dims[1] = {values.size()};
    const h5::Handle space = h5::space_handle(H5Screate_simple(1, dims, nullptr));
    const h5::Handle d =
        h5::dataset_handle(H5Dcreate2(file_.get(), dataset.c_str(), H5T_IEEE_F64LE, space.get(),
                                      H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    h5::check(d.get(), "create dataset " + dataset);
    if (!values.empty())
      h5::check(H5Dwrite(d.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()),
                "write " + dataset);
  });
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

void RunFile::flush() {
  const double now = seconds_now();
  const bool due =
      last_save_ < 0 || (now - last_save_ >= 1.0 && now - last_save_ >= 20 * last_save_seconds_);
  if (due && dirty_) save();
}

void RunFile::save() {
  const double t0 = seconds_now();
  replace_file(path_, image());
  dirty_ = false;
  last_save_ = seconds_now();
  last_save_seconds_ = last_save_ - t0;
}

std::string RunFile::image() {
  return guarded([&] {
    h5::check(H5Fflush(file_.get(), H5F_SCOPE_GLOBAL), "flush");
    const ssize_t size = H5Fget_file_image(file_.get(), nullptr, 0);
    h5::check(herr_t(size < 0 ? -1 : 0), "size of the file image");
    std::string bytes(std::size_t(size), '\0');
    h5::check(herr_t(H5Fget_file_image(file_.get(), &bytes[0], bytes.size()) < 0 ? -1 : 0),
              "file image");
    return bytes;
  });
}

}  // namespace moe
