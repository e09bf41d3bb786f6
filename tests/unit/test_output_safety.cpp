// The pieces behind issue 16's guarantees, each on its own: the output lock (exclusive, released
// when its holder dies), run files saved as whole images (what is on disk after a save reads
// back equal; a failed save names the file and the OS error and changes nothing), the resume
// config comparison, the memory pre-check, input files that are not regular files, and HDF5
// handles that close on every path.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>

#include "config/config.hpp"
#include "io/h5_util.hpp"
#include "io/input_file.hpp"
#include "io/output_lock.hpp"
#include "io/posix_file.hpp"
#include "io/run_file.hpp"
#include "train/memory_estimate.hpp"
#include "train/resume_check.hpp"
#include "util/user_error.hpp"

using namespace moe;
namespace fs = std::filesystem;

namespace {

std::string temp_dir() {
  const fs::path d = fs::temp_directory_path() / ("moe_output_safety_" + std::to_string(getpid()));
  fs::create_directories(d);
  return d.string();
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(OutputLock, SecondHolderRefusedUntilTheFirstDies) {
  const std::string out = temp_dir() + "/locked.h5";
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const OutputLock lock(out);
    const char c = 'x';
    (void)!write(ready[1], &c, 1);
    for (;;) pause();  // holds the lock until killed
  }
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  const std::string why = message_of([&] { OutputLock second(out); });
  EXPECT_NE(why.find("in use by another run"), std::string::npos) << why;
  EXPECT_NE(why.find("process " + std::to_string(child)), std::string::npos) << why;
  kill(child, SIGKILL);  // the OS releases the lock of a killed holder
  waitpid(child, nullptr, 0);
  EXPECT_EQ(message_of([&] { OutputLock third(out); }), "");
  EXPECT_FALSE(fs::exists(out)) << "locking must not create the output itself";
}

TEST(OutputLock, MissingDirectoryNamesTheOutput) {
  const std::string why = message_of([] { OutputLock l("/nonexistent/dir/run.h5"); });
  EXPECT_NE(why.find("/nonexistent/dir/run.h5"), std::string::npos) << why;
  EXPECT_NE(why.find("No such file or directory"), std::string::npos) << why;
}

TEST(OutputLock, SameFileSeesThroughPathSpellings) {
  const std::string d = temp_dir();
  replace_file(d + "/a.toml", "x");
  EXPECT_TRUE(same_file(d + "/a.toml", d + "/./a.toml"));
  EXPECT_TRUE(same_file(d + "/a.toml", d + "/../" + fs::path(d).filename().string() + "/a.toml"));
  EXPECT_TRUE(same_file(d + "/new.h5", d + "//new.h5"));  // neither exists yet
  EXPECT_FALSE(same_file(d + "/a.toml", d + "/b.toml"));
}

TEST(RunFile, SavedImageReadsBackEqual) {
  const std::string path = temp_dir() + "/image.h5";
  std::string image;
  {
    RunFile f(path);
    EXPECT_FALSE(fs::exists(path)) << "nothing on disk before the first save";
    f.set_attr("/status", std::string("running"));
    for (int i = 0; i < 100; ++i) f.append("/train/loss", 1.0 / (i + 1));
    f.append_row("/routing/layer_0/tokens_per_expert", std::vector<std::int64_t>{1, 2, 3});
    f.save();
    image = f.image();
    EXPECT_EQ(read_file_bytes(path), image);
  }
  RunFile back(path, RunFile::Mode::Append);
  EXPECT_EQ(back.string_attr("/status"), "running");
  EXPECT_EQ(back.series_rows().at("/train/loss"), 100);
  EXPECT_EQ(back.last_value("/train/loss"), 1.0 / 100);
  RunFile from_image(path, image);  // the checkpoint's copy opens the same way
  EXPECT_EQ(from_image.series_rows().at("/routing/layer_0/tokens_per_expert"), 1);
  EXPECT_TRUE(std::isnan(from_image.last_value("/no/such/series")));
}

TEST(RunFile, FailedSaveNamesTheFileAndKeepsThePreviousImage) {
  const std::string dir = temp_dir() + "/ro";
  fs::create_directories(dir);
  const std::string path = dir + "/run.h5";
  RunFile f(path);
  f.set_attr("/status", std::string("running"));
  f.save();
  const std::string before = read_file_bytes(path);
  f.set_attr("/status", std::string("complete"));
  // A directory that disappeared under the run: the save fails like a full disk would.
  const std::string moved = dir + ".moved";
  fs::rename(dir, moved);
  const std::string why = message_of([&] { f.save(); });
  EXPECT_NE(why.find(path), std::string::npos) << why;
  EXPECT_NE(why.find("No such file or directory"), std::string::npos) << why;
  fs::rename(moved, dir);
  EXPECT_EQ(read_file_bytes(path), before);
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().filename(), "run.h5") << "temporary file left: " << e.path();
}

TEST(ResumeCheck, NamesEachChangedKeyButTheSafeOnes) {
  Config a, b;
  b.train.lr = 1e-3;
  b.router.type = "hash";
  b.train.seed = 7;
  b.train.steps = a.train.steps * 2;  // safe
  b.output.checkpoint_every = 13;     // safe
  b.output.path = "elsewhere.h5";     // safe
  const auto diff = resume_config_differences(config_to_toml(a), config_to_toml(b));
  ASSERT_EQ(diff.size(), 3u);
  EXPECT_EQ(diff[0].rfind("router.type (\"topk\" -> \"hash\")", 0), 0u) << diff[0];
  EXPECT_EQ(diff[1].rfind("train.lr (", 0), 0u) << diff[1];
  EXPECT_EQ(diff[2], "train.seed (1234 -> 7)");
  EXPECT_TRUE(resume_config_differences(config_to_toml(a), config_to_toml(a)).empty());
}

TEST(MemoryEstimate, GrowsWithTheModelAndRefusesTheImpossible) {
  Config small;
  const MemoryEstimate s = estimate_memory(small, 1);
  EXPECT_GT(s.parameters, 0);
  EXPECT_EQ(s.optimizer, s.parameters);  // AdamW's two moments = values + gradients
  Config wide = small;
  wide.model.d_ff *= 4;
  EXPECT_GT(estimate_memory(wide, 1).total(), s.total());
  // Half the batch per rank with two ranks: activations halve, parameters do not.
  EXPECT_NEAR(estimate_memory(small, 2).activations, s.activations / 2, s.activations * 1e-9);
  EXPECT_EQ(estimate_memory(small, 2).parameters, s.parameters);
  EXPECT_EQ(check_memory(small, 1, 1), "");
  Config huge = small;
  huge.model.d_model = 65536;
  huge.model.d_ff = 1 << 20;
  huge.model.num_experts = 1024;
  const std::string why = check_memory(huge, 1, 1);
  EXPECT_NE(why.find("needs at least"), std::string::npos) << why;
  EXPECT_NE(why.find("available"), std::string::npos) << why;
  EXPECT_EQ(why.find('\n'), std::string::npos);
  EXPECT_EQ(human_bytes(1536.0 * 1024 * 1024 * 1024), "1.50 TiB");
}

TEST(InputFile, OnlyRegularFilesOfSaneSize) {
  EXPECT_NE(message_of([] {
              read_input_file("/dev/zero", "config file");
            }).find("'/dev/zero' is not a regular file"),
            std::string::npos);
  EXPECT_NE(message_of([] { read_input_file("/", "study file"); }).find("is a directory"),
            std::string::npos);
  const std::string big = temp_dir() + "/big.toml";
  { const FileDescriptor fd(::open(big.c_str(), O_CREAT | O_WRONLY, 0644)); }
  fs::resize_file(big, std::uintmax_t(kMaxInputFileBytes) + 1);  // sparse: no disk used
  EXPECT_NE(message_of([&] { read_input_file(big, "config file"); }).find("bytes (allowed"),
            std::string::npos);
  replace_file(big, "[train]\nsteps = 3\n");
  EXPECT_EQ(read_input_file(big, "config file"), "[train]\nsteps = 3\n");
  EXPECT_THROW(read_input_file("/dev/zero", "config file"), UserError);
}

TEST(H5Handle, ClosesOnEveryPath) {
  const std::string path = temp_dir() + "/handles.h5";
  const ssize_t open_before = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
  try {
    h5::Handle f =
        h5::file_handle(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
    h5::write_int_attr(f.get(), "n", 3);
    h5::read_int_attr(f.get(), "absent");  // throws between open and close
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("absent"), std::string::npos);
  }
  EXPECT_EQ(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL), open_before);
  fs::remove_all(fs::path(path).parent_path());
}
