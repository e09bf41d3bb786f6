// Text corpora: SentencePiece round trips, preparation and its cache, disjoint line splits,
// counts, caps, and batch determinism. The text is generated here (pseudo-English from a word
// list) so the tests need no corpus on disk and stay fast.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "data/corpus.hpp"
#include "data/prepare.hpp"
#include "data/text_source.hpp"
#include "data/tokenizer.hpp"
#include "util/rng.hpp"

using namespace moe;
namespace fs = std::filesystem;

namespace {

// n lines of 4..15 words from a small vocabulary with a Zipf-ish preference, some punctuation.
std::vector<std::string> generate_lines(int n, std::uint64_t seed) {
  static const char* kWords[] = {
      "the",   "and",    "of",      "to",   "in",    "that",     "he",      "shall", "unto",
      "for",   "i",      "his",     "a",    "lord",  "they",     "be",      "is",    "him",
      "not",   "them",   "it",      "with", "all",   "thou",     "thy",     "was",   "god",
      "which", "my",     "me",      "said", "but",   "ye",       "their",   "have",  "will",
      "land",  "people", "house",   "king", "water", "mountain", "river",   "stone", "bread",
      "light", "night",  "morning", "city", "gate",  "servant",  "brother", "field", "seed"};
  const int W = int(sizeof kWords / sizeof kWords[0]);
  Rng rng(seed);
  std::vector<std::string> lines;
  for (int i = 0; i < n; ++i) {
    const int len = 4 + int(rng.uniform_int(12));
    std::string line;
    for (int w = 0; w < len; ++w) {
      // min of two uniforms: small indices (frequent words) are likelier.
      const int a = int(rng.uniform_int(W)), b = int(rng.uniform_int(W));
      if (w > 0) line += rng.uniform_int(9) == 0 ? ", " : " ";
      line += kWords[std::min(a, b)];
    }
    line += rng.uniform_int(4) == 0 ? "?" : ".";
    if (i % 2 == 0) line[0] = char(line[0] - 'a' + 'A');
    lines.push_back(line);
  }
  return lines;
}

// What SentencePiece's default normalisation does to plain ASCII: runs of whitespace become
// one space, and leading/trailing whitespace goes.
std::string normalized(const std::string& s) {
  std::istringstream in(s);
  std::string word, out;
  while (in >> word) out += (out.empty() ? "" : " ") + word;
  return out;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class TextData : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("moe_test_data_text_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write_text(const std::string& name, const std::vector<std::string>& lines) {
    const std::string p = (dir_ / name).string();
    std::ofstream out(p);
    for (const std::string& l : lines) out << l << "\n";
    return p;
  }

  Config config(const std::string& path, std::vector<std::string> extra = {}) {
    std::vector<std::string> sets = {"data.source=text",
                                     "data.path=" + path,
                                     "data.cache_dir=" + (dir_ / "cache").string(),
                                     "model.vocab_size=256",
                                     "model.seq_len=16",
                                     "train.batch_size=4",
                                     "data.train_tokens=0",
                                     "data.val_tokens=100000"};
    sets.insert(sets.end(), extra.begin(), extra.end());
    return load_config("", sets);
  }

  fs::path dir_;
};

}  // namespace

TEST_F(TextData, TokenizerRoundTrip) {
  std::vector<std::string> lines = generate_lines(400, 1);
  lines.push_back("  Leading and   repeated   spaces,\tand a tab.  ");
  for (const char* type : {"bpe", "unigram"}) {
    const Tokenizer tok(Tokenizer::train(lines, type, 256));
    EXPECT_LE(tok.num_pieces(), 256) << type;
    EXPECT_GT(tok.num_pieces(), 100) << type;
    std::vector<std::int32_t> ids;
    for (const std::string& l : lines) tok.encode_line(l, ids);
    EXPECT_EQ(std::count(ids.begin(), ids.end(), tok.end_of_line_id()),
              std::ptrdiff_t(lines.size()));
    for (std::int32_t id : ids) ASSERT_TRUE(id >= 0 && id < 256);
    EXPECT_EQ(std::count(ids.begin(), ids.end(), 0), 0) << "no <unk> in the training text";
    const std::vector<std::string> back = split_lines(tok.decode(ids));
    ASSERT_EQ(back.size(), lines.size()) << type;
    for (std::size_t i = 0; i < lines.size(); ++i)
      EXPECT_EQ(back[i], normalized(lines[i])) << type << " line " << i;
  }
}

// The chunks of splits.tsv: (begin, end, split) per chunk, and each split's storage order.
struct SplitRows {
  std::vector<std::int64_t> begin, end;
  std::vector<std::string> split;
  std::map<std::string, std::vector<std::int64_t>> order;
};

SplitRows read_split_table(const std::string& path) {
  SplitRows t;
  std::istringstream in(read_all(path));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    if (line.rfind("# order ", 0) == 0) {
      std::string hash, word, name;
      f >> hash >> word >> name;
      name.pop_back();  // "train:" -> "train"
      std::int64_t c;
      while (f >> c) t.order[name].push_back(c);
      continue;
    }
    if (line.empty() || line[0] == '#') continue;
    std::int64_t c, b, e;
    std::string split;
    f >> c >> b >> e >> split;
    EXPECT_EQ(c, std::int64_t(t.begin.size()));
    t.begin.push_back(b), t.end.push_back(e), t.split.push_back(split);
  }
  return t;
}

TEST_F(TextData, PreparesOnceSplitsDisjointChunksAcrossTheText) {
  const std::vector<std::string> lines = generate_lines(600, 2);
  const std::string file = write_text("a.txt", lines);
  // 60 chunks of 10 lines in 3 blocks of 20: 3 validation and 3 test chunks.
  const Config cfg = config(file, {"data.chunk_lines=10"});
  const PreparedData first = prepare_text_data(cfg);
  EXPECT_FALSE(first.reused);
  EXPECT_EQ(first.val_lines, 30);
  EXPECT_EQ(first.test_lines, 30);
  EXPECT_EQ(first.train_lines, 540);
  for (const std::string& f : first.files) EXPECT_TRUE(fs::exists(f)) << f;

  // The table: consecutive chunks covering every line once; one validation and one test chunk
  // in each block of 20, so each split spans the whole text.
  const SplitRows t = read_split_table(first.dir + "/splits.tsv");
  ASSERT_EQ(t.begin.size(), 60u);
  for (std::size_t c = 0; c < 60; ++c) {
    EXPECT_EQ(t.begin[c], std::int64_t(c) * 10);
    EXPECT_EQ(t.end[c], std::int64_t(c + 1) * 10);
  }
  for (int block = 0; block < 3; ++block) {
    std::map<std::string, int> n;
    for (int c = block * 20; c < block * 20 + 20; ++c) ++n[t.split[std::size_t(c)]];
    EXPECT_EQ(n["val"], 1) << block;
    EXPECT_EQ(n["test"], 1) << block;
    EXPECT_EQ(n["train"], 18) << block;
  }

  const Corpus corpus = load_corpus(cfg);  // finds the cache
  EXPECT_EQ(std::int64_t(corpus.train.size()), first.train_tokens);
  EXPECT_EQ(std::int64_t(corpus.val.size()), first.val_tokens);
  EXPECT_EQ(std::int64_t(corpus.test.size()), first.test_tokens);
  EXPECT_TRUE(std::isnan(corpus.entropy_rate));
  EXPECT_NE(corpus.description.find("sentencepiece bpe 256"), std::string::npos)
      << corpus.description;

  // Each split decodes to exactly its chunks' lines, in the table's storage order: the splits
  // are disjoint and together the whole text.
  const Tokenizer tok(read_all(first.dir + "/tokenizer.model"));
  const std::pair<const char*, const std::vector<std::int32_t>*> splits[] = {
      {"train", &corpus.train}, {"val", &corpus.val}, {"test", &corpus.test}};
  std::vector<int> seen(600, 0);
  for (const auto& [name, tokens] : splits) {
    const std::vector<std::string> text = split_lines(tok.decode(*tokens));
    std::vector<std::string> expected;
    for (const std::int64_t c : t.order.at(name)) {
      EXPECT_EQ(t.split[std::size_t(c)], name);
      for (std::int64_t i = t.begin[std::size_t(c)]; i < t.end[std::size_t(c)]; ++i) {
        expected.push_back(normalized(lines[std::size_t(i)]));
        ++seen[std::size_t(i)];
      }
    }
    EXPECT_EQ(text, expected) << name;
  }
  EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), 600);

  // Counts: of the training split, summing to its size.
  ASSERT_EQ(corpus.train_counts.size(), 256u);
  EXPECT_EQ(
      std::accumulate(corpus.train_counts.begin(), corpus.train_counts.end(), std::int64_t(0)),
      std::int64_t(corpus.train.size()));
  std::vector<std::int64_t> recount(256, 0);
  for (auto t : corpus.train) ++recount[t];
  EXPECT_EQ(corpus.train_counts, recount);

  // Second preparation: reused, same files untouched.
  const auto mtime = fs::last_write_time(first.dir + "/train.bin");
  const PreparedData again = prepare_text_data(cfg);
  EXPECT_TRUE(again.reused);
  EXPECT_EQ(again.dir, first.dir);
  EXPECT_EQ(again.train_tokens, first.train_tokens);
  EXPECT_EQ(fs::last_write_time(first.dir + "/train.bin"), mtime);

  // A different tokenizer, vocabulary or split is a different cache entry.
  EXPECT_NE(prepare_text_data(config(file, {"data.tokenizer=unigram"})).dir, first.dir);
  EXPECT_NE(prepare_text_data(config(file, {"data.split_seed=2"})).dir, first.dir);
}

TEST_F(TextData, TailSplitKeepsTheFirstVersionsValidation) {
  const std::vector<std::string> lines = generate_lines(600, 2);
  const Config cfg = config(write_text("a.txt", lines), {"data.split=tail"});
  const PreparedData p = prepare_text_data(cfg);
  EXPECT_EQ(p.val_lines, 30);  // the last ceil(5%) of the lines
  EXPECT_EQ(p.test_lines, 30);
  const Corpus corpus = load_corpus(cfg);
  const Tokenizer tok(read_all(p.dir + "/tokenizer.model"));
  const std::vector<std::string> val = split_lines(tok.decode(corpus.val));
  ASSERT_EQ(val.size(), 30u);
  for (std::size_t i = 0; i < 30; ++i) EXPECT_EQ(val[i], normalized(lines[570 + i]));
  const std::vector<std::string> train = split_lines(tok.decode(corpus.train));
  ASSERT_EQ(train.size(), 540u);
  EXPECT_EQ(train.front(), normalized(lines[0]));
}

TEST_F(TextData, CapsAndCounts) {
  const std::string file = write_text("a.txt", generate_lines(600, 3));
  const Corpus full = load_corpus(config(file));
  const Corpus capped = load_corpus(config(file, {"data.train_tokens=500", "data.val_tokens=40"}));
  ASSERT_EQ(capped.train.size(), 500u);
  ASSERT_EQ(capped.val.size(), 40u);
  EXPECT_TRUE(std::equal(capped.train.begin(), capped.train.end(), full.train.begin()));
  EXPECT_TRUE(std::equal(capped.val.begin(), capped.val.end(), full.val.begin()));
  EXPECT_EQ(
      std::accumulate(capped.train_counts.begin(), capped.train_counts.end(), std::int64_t(0)),
      500);
  // Validation and test do not depend on the training cap.
  const Corpus other = load_corpus(config(file, {"data.train_tokens=1000"}));
  EXPECT_EQ(other.val, full.val);
  EXPECT_EQ(other.test, full.test);
}

TEST_F(TextData, SameSeedSameBatches) {
  const std::string file = write_text("a.txt", generate_lines(600, 4));
  const Config cfg = config(file, {"train.seed=7"});
  const Corpus a = load_corpus(cfg);  // prepares
  const Corpus b = load_corpus(cfg);  // reads the cache
  EXPECT_EQ(a.train, b.train);
  EXPECT_EQ(a.val, b.val);
  for (std::int64_t step : {0, 1, 99}) {
    EXPECT_EQ(train_batch(a, cfg, step).tokens, train_batch(b, cfg, step).tokens);
    EXPECT_EQ(train_batch(a, cfg, step).targets, train_batch(b, cfg, step).targets);
  }
  EXPECT_EQ(eval_batch(a.val, cfg, 0).tokens, eval_batch(b.val, cfg, 0).tokens);
  const Config other = config(file, {"train.seed=8"});
  EXPECT_NE(train_batch(a, cfg, 0).tokens, train_batch(a, other, 0).tokens);
  // Re-preparing from scratch (fresh cache) gives the same tokens: training is deterministic.
  fs::remove_all(dir_ / "cache");
  EXPECT_EQ(load_corpus(cfg).train, a.train);
}

TEST_F(TextData, GlobConcatenatesSortedFiles) {
  const std::vector<std::string> a = generate_lines(300, 5), b = generate_lines(300, 6);
  write_text("part2.txt", b);
  write_text("part1.txt", a);
  const std::vector<std::string> files = expand_data_path((dir_ / "part*.txt").string());
  ASSERT_EQ(files.size(), 2u);
  std::vector<std::string> want = a;
  want.insert(want.end(), b.begin(), b.end());
  EXPECT_EQ(read_text_lines(files), want);
  const Corpus c = load_corpus(config((dir_ / "part*.txt").string()));
  EXPECT_GT(c.train.size(), 1000u);
}

TEST_F(TextData, ChangedFileIsPreparedAgain) {
  const std::string file = write_text("a.txt", generate_lines(600, 7));
  const PreparedData first = prepare_text_data(config(file));
  write_text("a.txt", generate_lines(610, 8));
  const PreparedData second = prepare_text_data(config(file));
  EXPECT_FALSE(second.reused);
  EXPECT_NE(second.dir, first.dir);
}

TEST_F(TextData, BadInputIsOneLine) {
  auto message = [&](const Config& cfg) -> std::string {
    try {
      load_corpus(cfg);
    } catch (const UserError& e) {
      return e.what();
    }
    return "";
  };
  const std::string missing = message(config((dir_ / "nope*.txt").string()));
  EXPECT_NE(missing.find("data.path"), std::string::npos) << missing;
  // Too short for one window in some split.
  const std::string tiny = write_text("tiny.txt", generate_lines(6, 9));
  const std::string short_msg = message(config(tiny, {"model.seq_len=64"}));
  EXPECT_NE(short_msg.find(" split has "), std::string::npos) << short_msg;
  EXPECT_EQ(short_msg.find('\n'), std::string::npos) << short_msg;
  EXPECT_THROW(load_config("", {"data.source=text"}), UserError);  // data.path required
}
