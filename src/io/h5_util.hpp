// Small HDF5 helpers shared by the run file, its reader and the checkpoints.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

namespace moe::h5 {

// Throws std::runtime_error("HDF5 error: what") when st < 0.
void check(herr_t st, const std::string& what);
// Variable-length UTF-8 string type (caller closes it).
hid_t utf8_string_type();

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
void write_string_dataset(hid_t file, const std::string& name, const std::string& text);
std::string read_string_dataset(hid_t file, const std::string& name);

}  // namespace moe::h5
