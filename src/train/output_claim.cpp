#include "train/output_claim.hpp"

#include <filesystem>

#include "data/text_source.hpp"
#include "io/checkpoint.hpp"
#include "io/h5_util.hpp"
#include "util/user_error.hpp"

namespace moe {

namespace {

// The files the run reads: the output must be none of them.
std::vector<std::string> run_inputs(const Config& cfg, std::vector<std::string> inputs) {
  if (cfg.data.source == "text" || cfg.data.source == "tokens") {
    try {
      for (const std::string& f : expand_data_path(cfg.data.path)) inputs.push_back(f);
    } catch (const std::exception&) {
      // No such data: load_corpus says so in its own words.
    }
  }
  return inputs;
}

// Before the lock: the path itself.
void check_output_path(const std::string& path, const std::vector<std::string>& inputs) {
  if (path.empty()) throw UserError("output.path is empty (allowed: a file name, e.g. run.h5)");
  for (const std::string& input : inputs)
    for (const std::string& mine : {path, checkpoint_path(path), lock_path(path)})
      if (same_file(mine, input))
        throw UserError("output '" + path + "' would overwrite '" + input +
                        "', an input of this run (allowed: another --output)");
}

// The root attribute `status` of an existing run file; "" when absent or unreadable.
std::string run_file_status(const std::string& path) {
  std::string status;
  H5E_BEGIN_TRY {
    const h5::Handle f = h5::file_handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
    try {
      if (f.valid() && h5::has_attr(f.get(), "status"))
        status = h5::read_string_attr(f.get(), "status");
    } catch (const std::exception&) {
      status.clear();
    }
  }
  H5E_END_TRY;
  return status;
}

// Under the lock: what is at the output may be continued (resume) or replaced (a new run).
void check_existing_output(const std::string& path, bool resume, bool overwrite) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const std::string ckpt = checkpoint_path(path);
  const bool has_ckpt = fs::exists(ckpt, ec);
  const bool has_file = fs::exists(path, ec);
  const std::string status = has_file ? run_file_status(path) : std::string();
  if (resume && overwrite)
    throw UserError("--resume and --overwrite together (allowed: one of them)");
  if (resume) {
    if (status == "complete")
      throw UserError("--resume: run file '" + path + "' is already complete");
    if (!has_ckpt)
      throw UserError("--resume: no checkpoint '" + ckpt +
                      "' (allowed: --resume of a run that was stopped or killed)");
    return;
  }
  if (overwrite) return;
  if (status == "complete")
    throw UserError("output '" + path +
                    "' holds a complete run (allowed: --overwrite to replace it, or another "
                    "--output)");
  if (has_ckpt)
    throw UserError("output '" + path + "' has the checkpoint of an unfinished run, '" + ckpt +
                    "' (allowed: --resume to continue it, --overwrite to start over)");
  if (has_file && status.empty())
    throw UserError("output '" + path +
                    "' exists and is not a readable run file (allowed: --overwrite to replace "
                    "it, or another --output)");
}

// Temporary files a killed writer of this output left ("<path>.tmp.<pid>",
// "<path>.ckpt.tmp.<pid>"): under the lock no other process writes them, so they go.
void remove_stale_temporaries(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path p(path);
  const fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  const std::string name = p.filename().string();
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string f = entry.path().filename().string();
    if (f.rfind(name + ".tmp.", 0) == 0 || f.rfind(name + ".ckpt.tmp.", 0) == 0)
      fs::remove(entry.path(), ec);
  }
}

}  // namespace

std::unique_ptr<OutputLock> claim_output(const Config& cfg, const std::vector<std::string>& inputs,
                                         bool resume, bool overwrite) {
  const std::string& path = cfg.output.path;
  check_output_path(path, run_inputs(cfg, inputs));
  auto lock = std::make_unique<OutputLock>(path);
  check_existing_output(path, resume, overwrite);
  remove_stale_temporaries(path);
  return lock;
}

}  // namespace moe
