// moe-train: trains one model from a TOML config and writes one HDF5 run file.
//   moe-train --config FILE.toml [--set section.key=value ...] [--output RUN.h5]
// Bad input (options, config, data) -> one line on stderr, exit 2, no output file.
#include <mpi.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "data/corpus.hpp"
#include "io/run_file.hpp"
#include "matmul.hpp"
#include "parallel/runtime.hpp"
#include "train/trainer.hpp"
#include "version.hpp"

namespace {

struct Options {
  std::string config_path, output;
  std::vector<std::string> sets;
};

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

const char* kUsage =
    "usage: moe-train --config FILE.toml [--set section.key=value ...] [--output RUN.h5]";

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* flag) {
      if (i + 1 >= argc) throw UsageError(std::string(flag) + " needs a value (" + kUsage + ")");
      return std::string(argv[++i]);
    };
    if (a == "--config") o.config_path = value("--config");
    else if (a == "--set") o.sets.push_back(value("--set"));
    else if (a == "--output") o.output = value("--output");
    else if (a == "--resume" || a == "--stop-after")
      throw UsageError(a + " needs checkpoints, which this build does not write yet");
    else if (a.rfind("--kokkos-", 0) == 0) continue;  // consumed by Kokkos
    else if (a == "--help" || a == "-h") throw UsageError(kUsage);
    else throw UsageError("unknown argument '" + a + "' (" + kUsage + ")");
  }
  return o;
}

std::string now_iso8601() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

int run(int argc, char** argv, const moe::Runtime& rt) {
  Options opt;
  moe::Config cfg;
  moe::Corpus corpus;
  // Everything the user gave us is checked before any file is created.
  try {
    opt = parse_args(argc, argv);
    cfg = moe::load_config(opt.config_path, opt.sets);
    if (!opt.output.empty()) cfg.output.path = opt.output;
    if (rt.size() > 1)
      throw UsageError("this build trains on one MPI rank; got " + std::to_string(rt.size()));
    corpus = moe::load_corpus(cfg);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moe-train: %s\n", e.what());
    return 2;
  }

  std::cout << "moe-suite " << moe::suite_version() << " (" << moe::git_commit() << ")  Kokkos "
            << KOKKOS_VERSION / 10000 << "." << KOKKOS_VERSION / 100 % 100 << "."
            << KOKKOS_VERSION % 100 << " " << moe::Runtime::backend_name() << "  gemm "
            << moe::gemm_backend() << "  ranks " << rt.size() << "\n";
  std::cout << "data: " << corpus.description << "\n";
  std::printf("data: unigram entropy %.4f nats/token, entropy rate %.4f nats/token "
              "(the best reachable loss)\n",
              corpus.unigram_entropy, corpus.entropy_rate);

  std::unique_ptr<moe::RunFile> file;
  try {
    file = std::make_unique<moe::RunFile>(cfg.output.path);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moe-train: %s (output.path)\n", e.what());
    return 2;
  }
  const std::string cfg_text = moe::config_to_toml(cfg);
  file->set_attr("/status", std::string("running"));
  file->set_attr("/suite_version", std::string(moe::suite_version()));
  file->set_attr("/git_commit", std::string(moe::git_commit()));
  file->set_attr("/kokkos_version", std::int64_t(KOKKOS_VERSION));
  file->set_attr("/kokkos_backend", std::string(moe::Runtime::backend_name()));
  file->set_attr("/gemm_backend", std::string(moe::gemm_backend()));
  file->set_attr("/mpi_ranks", std::int64_t(rt.size()));
  file->set_attr("/seed", std::int64_t(cfg.train.seed));
  file->set_attr("/start_time", now_iso8601());
  file->set_attr("/data_description", corpus.description);
  file->set_attr("/data_unigram_entropy", corpus.unigram_entropy);
  file->set_attr("/data_entropy_rate", corpus.entropy_rate);
  file->write_text("/config", cfg_text);
  file->flush();

  try {
    moe::Trainer trainer(cfg, corpus, file.get(), &std::cout);
    file->set_attr("/num_params", std::int64_t(trainer.model().num_params()));
    std::cout << "model: " << trainer.model().num_params() << " parameters, "
              << trainer.model().num_moe_layers() << " MoE layers of " << cfg.model.num_experts
              << " experts (top-" << cfg.model.top_k << ", router " << cfg.router.type << ")\n";
    const moe::TrainSummary s = trainer.train();
    file->set_attr("/final_loss", s.last_loss);
    file->set_attr("/final_val_loss", s.last_val_loss);
    file->set_attr("/end_time", now_iso8601());
    file->set_attr("/status", std::string("complete"));
    file->flush();
    std::cout << "wrote " << cfg.output.path << "\n";
  } catch (const std::exception& e) {
    // Keep what was trained so far: the file stays, marked failed with the reason.
    file->set_attr("/status", std::string("failed"));
    file->set_attr("/error", std::string(e.what()));
    file->set_attr("/end_time", now_iso8601());
    file->flush();
    std::fprintf(stderr, "moe-train: run failed: %s\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int rc;
  {
    moe::Runtime rt(argc, argv);
    rc = run(argc, argv, rt);
  }
  return rc;
}
