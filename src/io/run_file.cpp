#include "io/run_file.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <limits>
#include <stdexcept>

#include "io/posix_file.hpp"

namespace moe {
namespace {

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

// Splits "/a/b/c" into parent "/a/b" and leaf "c".
std::pair<std::string, std::string> RunFile::split_path(const std::string& path) {
  const auto pos = path.rfind('/');
  if (pos == std::string::npos) return {"/", path};
  return {pos == 0 ? "/" : path.substr(0, pos), path.substr(pos + 1)};
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

// Attributes: `write(object, leaf)` on the parent object of "/group/name" (created when
// missing), `read(object, leaf)` likewise without creating anything.
template <class Write>
void RunFile::write_attr(const std::string& name, Write write) {
  dirty_ = true;
  guarded([&] {
    std::string leaf;
    const h5::Handle obj = h5::object_handle(open_parent(name, leaf));
    write(obj.get(), leaf);
  });
}
template <class Read>
auto RunFile::read_attr(const std::string& name, Read read) const {
  return guarded([&] {
    auto [parent, leaf] = split_path(name);
    const h5::Handle obj = h5::object_handle(H5Oopen(file_.get(), parent.c_str(), H5P_DEFAULT));
    h5::check(obj.get(), "open " + parent);
    return read(obj.get(), leaf);
  });
}

void RunFile::set_attr(const std::string& name, const std::string& value) {
  write_attr(name,
             [&](hid_t o, const std::string& leaf) { h5::write_string_attr(o, leaf, value); });
}
void RunFile::set_attr(const std::string& name, double value) {
  write_attr(name,
             [&](hid_t o, const std::string& leaf) { h5::write_double_attr(o, leaf, value); });
}
void RunFile::set_attr(const std::string& name, std::int64_t value) {
  write_attr(name, [&](hid_t o, const std::string& leaf) { h5::write_int_attr(o, leaf, value); });
}
std::string RunFile::string_attr(const std::string& name) const {
  return read_attr(name,
                   [](hid_t o, const std::string& leaf) { return h5::read_string_attr(o, leaf); });
}
std::int64_t RunFile::int_attr(const std::string& name) const {
  return read_attr(name,
                   [](hid_t o, const std::string& leaf) { return h5::read_int_attr(o, leaf); });
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
