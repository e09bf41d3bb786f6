// moe-data: prepares the data a config describes, ahead of training (which would otherwise do
// it on first use): trains the tokenizer, tokenizes, writes the cache (see data/prepare.hpp).
//   moe-data prepare --config FILE.toml [--set section.key=value ...]
// Prints what it wrote and how long it took. Bad input -> one line on stderr, exit 2.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "data/corpus.hpp"
#include "data/prepare.hpp"
#include "programs/command_line.hpp"
#include "programs/run_main.hpp"
#include "util/user_error.hpp"

namespace {

struct Options {
  std::string config_path;
  std::vector<std::string> sets;
};

// False when --help was given.
bool parse_args(int argc, char** argv, Options& o) {
  CLI::App app("Prepares the data a config describes, ahead of training.", "moe-data");
  CLI::App* prepare = app.add_subcommand(
      "prepare", "train the tokenizer, tokenize and write the cache (data/prepare.hpp)");
  moe::add_config_options(*prepare, o.config_path, o.sets);
  app.require_subcommand(1);
  if (argc > 1 && argv[1][0] != '-' && std::string(argv[1]) != "prepare")
    throw moe::UserError("unknown command '" + std::string(argv[1]) +
                         "' (allowed: prepare; see moe-data --help)");
  return moe::parse_command_line(app, argc, argv);
}

int run(int argc, char** argv) {
  {
    Options opt;
    if (!parse_args(argc, argv, opt)) return 0;
    const moe::Config cfg = moe::load_config(opt.config_path, opt.sets);
    const auto t0 = std::chrono::steady_clock::now();
    if (cfg.data.source == "text" || cfg.data.source == "kjv") {
      const moe::PreparedData p = moe::prepare_text_data(cfg);
      std::printf("%s %s in %.2f s\n", p.reused ? "reused" : "prepared", p.dir.c_str(), p.seconds);
      std::printf("split: %s\n", moe::split_description(cfg.data).c_str());
      std::printf(
          "lines: %lld train + %lld val + %lld test; tokens: %lld train + %lld val + %lld test; "
          "tokenizer: sentencepiece %s, %d pieces (model.vocab_size %d)\n",
          static_cast<long long>(p.train_lines), static_cast<long long>(p.val_lines),
          static_cast<long long>(p.test_lines), static_cast<long long>(p.train_tokens),
          static_cast<long long>(p.val_tokens), static_cast<long long>(p.test_tokens),
          cfg.data.tokenizer.c_str(), p.num_pieces, cfg.model.vocab_size);
      for (const std::string& f : p.files)
        std::printf("  %s (%lld bytes)\n", f.c_str(),
                    static_cast<long long>(std::filesystem::file_size(f)));
    }
    // Loading checks the caps and splits as training will (token files: validates every id).
    const moe::Corpus corpus = moe::load_corpus(cfg);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("data: %s\n", corpus.description.c_str());
    std::printf("data: unigram entropy %.4f nats/token; total %.2f s\n", corpus.unigram_entropy, s);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return moe::run_main("moe-data", [&] { return run(argc, argv); });
}
