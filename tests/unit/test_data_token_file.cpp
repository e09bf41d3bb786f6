// Token files (llm.c format): round trips, the reader's one-line rejections, and the "tokens"
// corpus source (sorted glob concatenation, last 5% validation, caps, counts).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "data/corpus.hpp"
#include "data/splits.hpp"
#include "data/token_file.hpp"

using namespace moe;
namespace fs = std::filesystem;

namespace {

class TokenFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("moe_test_token_file_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // A raw file: header fields, then `ids` as 16-bit values.
  std::string raw(const std::string& name, std::int32_t magic, std::int32_t version,
                  std::int32_t count, const std::vector<std::uint16_t>& ids) const {
    std::vector<std::int32_t> header(256, 0);
    header[0] = magic;
    header[1] = version;
    header[2] = count;
    std::ofstream out(path(name), std::ios::binary);
    out.write(reinterpret_cast<const char*>(header.data()), 1024);
    out.write(reinterpret_cast<const char*>(ids.data()), std::streamsize(ids.size() * 2));
    return path(name);
  }

  // The message of the UserError that reading `file` throws ("" if none).
  static std::string rejection(const std::string& file, int vocab) {
    try {
      read_token_file(file, vocab);
    } catch (const UserError& e) {
      return e.what();
    }
    return "";
  }

  fs::path dir_;
};

std::vector<std::int32_t> iota_ids(int n, int vocab) {
  std::vector<std::int32_t> ids(n);
  for (int i = 0; i < n; ++i) ids[i] = (i * 7919) % vocab;
  return ids;
}

}  // namespace

TEST_F(TokenFileTest, RoundTripNarrowAndWide) {
  for (int vocab : {1024, 65535, 70000}) {
    const std::vector<std::int32_t> ids = iota_ids(5000, vocab);
    const std::string f = path("ids_" + std::to_string(vocab) + ".bin");
    write_token_file(f, ids, vocab);
    const int width = vocab <= 65535 ? 2 : 4;
    EXPECT_EQ(fs::file_size(f), 1024u + ids.size() * width);
    std::ifstream in(f, std::ios::binary);
    std::int32_t header[3];
    in.read(reinterpret_cast<char*>(header), sizeof header);
    EXPECT_EQ(header[0], 20240520);
    EXPECT_EQ(header[1], width == 2 ? 1 : 2);
    EXPECT_EQ(header[2], 5000);
    EXPECT_EQ(read_token_file(f, vocab), ids);
    // No temporary file is left next to it.
    for (const auto& entry : fs::directory_iterator(dir_))
      EXPECT_EQ(entry.path().string().find(".tmp."), std::string::npos) << entry.path();
  }
}

TEST_F(TokenFileTest, RejectsWrongMagic) {
  const std::string f = raw("magic.bin", 12345, 1, 3, {1, 2, 3});
  const std::string msg = rejection(f, 100);
  EXPECT_NE(msg.find(f), std::string::npos) << msg;
  EXPECT_NE(msg.find("magic"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

TEST_F(TokenFileTest, RejectsBadVersion) {
  const std::string msg = rejection(raw("version.bin", 20240520, 3, 3, {1, 2, 3}), 100);
  EXPECT_NE(msg.find("version"), std::string::npos) << msg;
}

TEST_F(TokenFileTest, RejectsTruncatedFile) {
  const std::string f = raw("short.bin", 20240520, 1, 10, {1, 2, 3});
  const std::string msg = rejection(f, 100);
  EXPECT_NE(msg.find(f), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  // Shorter than the header itself.
  { std::ofstream(path("tiny.bin")) << "abc"; }
  EXPECT_NE(rejection(path("tiny.bin"), 100).find("truncated"), std::string::npos);
  // Missing.
  EXPECT_NE(rejection(path("missing.bin"), 100).find("missing.bin"), std::string::npos);
}

TEST_F(TokenFileTest, RejectsIdOutsideVocabulary) {
  const std::string f = raw("big_id.bin", 20240520, 1, 3, {1, 100, 3});
  const std::string msg = rejection(f, 100);
  EXPECT_NE(msg.find(f), std::string::npos) << msg;
  EXPECT_NE(msg.find("model.vocab_size = 100"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  EXPECT_EQ(rejection(f, 101), "");
}

TEST_F(TokenFileTest, TokensSourceSplitsCapsAndCounts) {
  const int V = 300;
  const std::vector<std::int32_t> a = iota_ids(3000, V), b = iota_ids(1000, 17);
  // Written in reverse name order: the glob must still concatenate a then b.
  write_token_file(path("part_b.bin"), b, V);
  write_token_file(path("part_a.bin"), a, V);
  std::vector<std::int32_t> all = a;
  all.insert(all.end(), b.begin(), b.end());
  const std::string glob = path("part_*.bin");
  auto load = [&](std::int64_t train_tokens, std::int64_t val_tokens, const char* split) {
    return load_corpus(
        load_config("", {"data.source=tokens", "data.path=" + glob, "model.vocab_size=300",
                         "model.seq_len=16", "data.train_tokens=" + std::to_string(train_tokens),
                         "data.val_tokens=" + std::to_string(val_tokens), "data.test_tokens=0",
                         "data.chunk_tokens=100", std::string("data.split=") + split}));
  };
  // Tail: the first version's validation (the last ceil(5%) of 4000), test the 5% before.
  const Corpus tail = load(0, 100000, "tail");
  ASSERT_EQ(tail.val.size(), 200u);
  ASSERT_EQ(tail.test.size(), 200u);
  ASSERT_EQ(tail.train.size(), 3600u);
  EXPECT_TRUE(std::equal(tail.train.begin(), tail.train.end(), all.begin()));
  EXPECT_TRUE(std::equal(tail.test.begin(), tail.test.end(), all.begin() + 3600));
  EXPECT_TRUE(std::equal(tail.val.begin(), tail.val.end(), all.begin() + 3800));

  // Chunks: 40 chunks of 100 tokens, one validation and one test chunk in each 20, each split
  // the concatenation of its chunks in the plan's order (across both files).
  const Corpus c = load(0, 100000, "chunks");
  const SplitPlan plan = chunk_split(4000, 100, 20, 1);
  const std::vector<std::int32_t>* got[3] = {&c.train, &c.val, &c.test};
  for (int k = 0; k < 3; ++k) {
    std::vector<std::int32_t> expected;
    for (const std::int64_t ch : plan.order[k])
      expected.insert(expected.end(), all.begin() + plan.chunk_begin[ch],
                      all.begin() + plan.chunk_end[ch]);
    EXPECT_EQ(*got[k], expected) << k;
  }
  ASSERT_EQ(c.val.size(), 200u);
  ASSERT_EQ(c.test.size(), 200u);
  EXPECT_EQ(std::accumulate(c.train_counts.begin(), c.train_counts.end(), std::int64_t(0)), 3600);
  EXPECT_TRUE(std::isnan(c.entropy_rate));
  EXPECT_GT(c.unigram_entropy, 0);

  // Caps: prefixes of each split; validation fixed by val_tokens alone.
  const Corpus capped = load(1000, 50, "chunks");
  EXPECT_EQ(capped.train, std::vector<std::int32_t>(c.train.begin(), c.train.begin() + 1000));
  EXPECT_EQ(capped.val, std::vector<std::int32_t>(c.val.begin(), c.val.begin() + 50));
  EXPECT_EQ(capped.test, c.test);
  EXPECT_EQ(
      std::accumulate(capped.train_counts.begin(), capped.train_counts.end(), std::int64_t(0)),
      1000);

  // An id >= vocab_size in any file: one line naming the file.
  try {
    load_corpus(load_config("", {"data.source=tokens", "data.path=" + glob, "model.vocab_size=100",
                                 "model.seq_len=16"}));
    FAIL() << "no error";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("part_a.bin"), std::string::npos) << e.what();
  }
}

TEST(TokenSourceConfig, NeedsPath) {
  try {
    load_config("", {"data.source=tokens"});
    FAIL() << "no error";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("data.path"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_corpus(load_config("", {"data.source=tokens", "data.path=/no/such/*.bin"})),
               UserError);
}
