#include "io/checkpoint.hpp"

#include <hdf5.h>

#include <cstdio>
#include <sstream>
#include <stdexcept>

#include "io/h5_util.hpp"
#include "io/posix_file.hpp"

namespace moe {

std::string checkpoint_path(const std::string& run_file) {
  return run_file + ".ckpt";
}

std::map<std::string, std::int64_t> model_shape(const ModelConfig& m) {
  return {{"model.vocab_size", m.vocab_size},
          {"model.d_model", m.d_model},
          {"model.n_layers", m.n_layers},
          {"model.n_heads", m.n_heads},
          {"model.d_ff", m.d_ff},
          {"model.seq_len", m.seq_len},
          {"model.num_experts", m.num_experts},
          {"model.top_k", m.top_k},
          {"model.moe_every", m.moe_every}};
}

namespace {

void write_contents(hid_t f, const Checkpoint& ck) {
  h5::write_int_attr(f, "next_step", ck.next_step);
  h5::write_double_attr(f, "last_val_loss", ck.last_val_loss);
  for (const auto& [key, value] : ck.shape) h5::write_int_attr(f, "shape." + key, value);
  h5::write_string_dataset(f, "config", ck.config_text);
  h5::write_vector(f, "params", ck.params);
  h5::write_vector(f, "adam_m", ck.adam_m);
  h5::write_vector(f, "adam_v", ck.adam_v);
  std::string names;
  std::vector<std::int32_t> rows;
  for (const auto& [name, n] : ck.series_rows) {
    names += name + "\n";
    rows.push_back(std::int32_t(n));
  }
  h5::write_string_dataset(f, "series_names", names);
  h5::write_vector(f, "series_rows", rows);
  h5::write_int_attr(f, "probe_layers", std::int64_t(ck.probe_top1.size()));
  for (std::size_t i = 0; i < ck.probe_top1.size(); ++i)
    h5::write_vector(f, "probe_top1_" + std::to_string(i), ck.probe_top1[i]);
  h5::write_bytes(f, "run_file_image", ck.run_file_image);
}

void read_contents(hid_t f, Checkpoint& ck) {
  ck.next_step = h5::read_int_attr(f, "next_step");
  ck.last_val_loss = h5::read_double_attr(f, "last_val_loss");
  for (const auto& entry : model_shape(ModelConfig{})) {
    const std::string name = "shape." + entry.first;
    if (h5::has_attr(f, name)) ck.shape[entry.first] = h5::read_int_attr(f, name);
  }
  ck.config_text = h5::read_string_dataset(f, "config");
  ck.params = h5::read_floats(f, "params");
  ck.adam_m = h5::read_floats(f, "adam_m");
  ck.adam_v = h5::read_floats(f, "adam_v");
  std::istringstream names(h5::read_string_dataset(f, "series_names"));
  const auto rows = h5::read_ints(f, "series_rows");
  std::string name;
  for (std::size_t i = 0; std::getline(names, name) && i < rows.size(); ++i)
    ck.series_rows[name] = rows[i];
  const auto layers = h5::read_int_attr(f, "probe_layers");
  for (std::int64_t i = 0; i < layers; ++i)
    ck.probe_top1.push_back(h5::read_ints(f, "probe_top1_" + std::to_string(i)));
  if (h5::has_dataset(f, "run_file_image")) ck.run_file_image = h5::read_bytes(f, "run_file_image");
}

}  // namespace

void write_checkpoint(const std::string& path, const Checkpoint& ck) {
  // Built in memory (HDF5's core driver), then written as one image through a temporary file,
  // fsync and rename: HDF5 never writes to disk, so a full disk is one POSIX error naming the
  // file, and readers (and a process killed at any instant) see the old checkpoint or the new.
  std::string image;
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  try {
    const h5::Handle fapl = h5::plist_handle(H5Pcreate(H5P_FILE_ACCESS));
    H5Pset_fapl_core(fapl.get(), 1 << 20, /*backing_store=*/0);
    const h5::Handle f =
        h5::file_handle(H5Fcreate("/proc/self/moe-checkpoint", H5F_ACC_TRUNC, H5P_DEFAULT,
                                  fapl.get()));  // in memory only (see run_file.cpp)
    h5::check(f.get(), "create");
    write_contents(f.get(), ck);
    h5::check(H5Fflush(f.get(), H5F_SCOPE_GLOBAL), "flush");
    const ssize_t size = H5Fget_file_image(f.get(), nullptr, 0);
    h5::check(herr_t(size < 0 ? -1 : 0), "size of the file image");
    image.resize(std::size_t(size));
    h5::check(herr_t(H5Fget_file_image(f.get(), &image[0], image.size()) < 0 ? -1 : 0),
              "file image");
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot write checkpoint '" + path + "': " + e.what());
  }
  try {
    replace_file(path, image);
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot write checkpoint '" + path + "': " + e.what());
  }
}

Checkpoint read_checkpoint(const std::string& path) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  const h5::Handle f = h5::file_handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!f.valid()) throw std::runtime_error("cannot read checkpoint '" + path + "'");
  Checkpoint ck;
  try {
    read_contents(f.get(), ck);
  } catch (const std::exception& e) {
    throw std::runtime_error("checkpoint '" + path + "' is unreadable: " + e.what());
  }
  return ck;
}

}  // namespace moe
