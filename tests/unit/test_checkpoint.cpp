// Checkpoints: round trip, and atomicity: a writer killed at any moment while writing a new
// checkpoint never leaves the previous one unreadable (write beside, then rename).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "io/checkpoint.hpp"

using namespace moe;

namespace {

Checkpoint make(float value, std::size_t n) {
  Checkpoint ck;
  ck.next_step = std::int64_t(value);
  ck.config_text = "[model]\nd_model = 8\n";
  ck.shape = {{"model.d_model", 8}};
  ck.params.assign(n, value);
  ck.adam_m.assign(n, value + 1);
  ck.adam_v.assign(n, value + 2);
  ck.series_rows = {{"/train/loss", 17}, {"/routing/layer_0/tokens_per_expert", 17}};
  ck.probe_top1 = {{1, 2, 3}, {3, 2, 1}};
  ck.last_val_loss = 1.5;
  return ck;
}

std::string temp_path(const char* name) {
  return "/tmp/moe_test_" + std::to_string(getpid()) + "_" + name;
}

}  // namespace

TEST(Checkpoint, RoundTrip) {
  const std::string path = temp_path("ck.h5");
  const Checkpoint a = make(7, 1000);
  write_checkpoint(path, a);
  const Checkpoint b = read_checkpoint(path);
  EXPECT_EQ(b.next_step, 7);
  EXPECT_EQ(b.config_text, a.config_text);
  EXPECT_EQ(b.shape, a.shape);
  EXPECT_EQ(b.params, a.params);
  EXPECT_EQ(b.adam_m, a.adam_m);
  EXPECT_EQ(b.adam_v, a.adam_v);
  EXPECT_EQ(b.series_rows, a.series_rows);
  EXPECT_EQ(b.probe_top1, a.probe_top1);
  EXPECT_EQ(b.last_val_loss, 1.5);
  std::remove(path.c_str());
}

TEST(Checkpoint, MissingFileIsAnErrorNamingIt) {
  try {
    read_checkpoint("/nonexistent/x.ckpt");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/x.ckpt"), std::string::npos);
  }
}

TEST(Checkpoint, KilledWriterNeverDestroysThePreviousCheckpoint) {
  const std::string path = temp_path("atomic.h5");
  const std::size_t n = 1 << 21;  // 8 MiB per array: writing takes long enough to be hit
  write_checkpoint(path, make(1, n));
  int saw_new = 0;
  for (int trial = 0; trial < 8; ++trial) {
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      // Keep rewriting a newer checkpoint until killed.
      const Checkpoint b = make(2, n);
      for (;;) write_checkpoint(path, b);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5 + 23 * trial));
    // The last trial waits until a whole write (fsync'ed: slow on a busy disk) completed.
    for (int wait = 0; trial == 7 && wait < 600 && read_checkpoint(path).next_step != 2; ++wait)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
    const Checkpoint c = read_checkpoint(path);  // must never throw
    ASSERT_TRUE(c.next_step == 1 || c.next_step == 2);
    ASSERT_EQ(c.params.size(), n);
    EXPECT_EQ(c.params.front(), float(c.next_step));
    EXPECT_EQ(c.params.back(), float(c.next_step));
    EXPECT_EQ(c.adam_v.back(), float(c.next_step + 2));
    saw_new += c.next_step == 2;
  }
  if (saw_new == 0) {
    // A loaded machine may not finish one write in the windows above: let a writer run until a
    // complete newer checkpoint is visible (at most 60 s), then kill it mid-rewrite.
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      const Checkpoint b = make(2, n);
      for (;;) write_checkpoint(path, b);
    }
    for (int i = 0; i < 1200 && saw_new == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      saw_new += read_checkpoint(path).next_step == 2;
    }
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
    EXPECT_EQ(read_checkpoint(path).next_step, 2);
  }
  EXPECT_GT(saw_new, 0) << "the writer should have completed at least once";
  std::remove(path.c_str());
  // The killed writers' temporary files ("<path>.tmp.<pid>").
  for (const auto& entry :
       std::filesystem::directory_iterator(std::filesystem::path(path).parent_path()))
    if (entry.path().string().rfind(path + ".tmp", 0) == 0) std::filesystem::remove(entry.path());
}
