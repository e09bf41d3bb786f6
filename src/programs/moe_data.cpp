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
#include "programs/run_main.hpp"
#include "util/user_error.hpp"

namespace {

const char* kUsage = "usage: moe-data prepare [--config FILE.toml] [--set section.key=value ...]";

struct Options {
  std::string command, config_path;
  std::vector<std::string> sets;
};

Options parse_args(int argc, char** argv) {
  Options o;
  if (argc < 2) throw moe::UserError(kUsage);
  o.command = argv[1];
  if (o.command == "--help" || o.command == "-h") throw moe::UserError(kUsage);
  if (o.command != "prepare")
    throw moe::UserError("unknown command '" + o.command + "' (" + kUsage + ")");
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* flag) {
      if (i + 1 >= argc)
        throw moe::UserError(std::string(flag) + " needs a value (" + kUsage + ")");
      return std::string(argv[++i]);
    };
    if (a == "--config")
      o.config_path = value("--config");
    else if (a == "--set")
      o.sets.push_back(value("--set"));
    else
      throw moe::UserError("unknown argument '" + a + "' (" + kUsage + ")");
  }
  return o;
}

int run(int argc, char** argv) {
  {
    const Options opt = parse_args(argc, argv);
    const moe::Config cfg = moe::load_config(opt.config_path, opt.sets);
    const auto t0 = std::chrono::steady_clock::now();
    if (cfg.data.source == "text" || cfg.data.source == "kjv") {
      const moe::PreparedData p = moe::prepare_text_data(cfg);
      std::printf("%s %s in %.2f s\n", p.reused ? "reused" : "prepared", p.dir.c_str(), p.seconds);
      std::printf(
          "lines: %lld train + %lld val; tokens: %lld train + %lld val; "
          "tokenizer: sentencepiece %s, %d pieces (model.vocab_size %d)\n",
          static_cast<long long>(p.train_lines), static_cast<long long>(p.val_lines),
          static_cast<long long>(p.train_tokens), static_cast<long long>(p.val_tokens),
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
