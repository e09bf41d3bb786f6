// moe-bench: training-step throughput of the reference model against the machine's own sgemm.
//   moe-bench [--config F] [--set section.key=value ...] [--steps N] [--output RUN.h5]
// With --output the steps also record every metric to a run file, and metrics_overhead= is the
// share of step time spent writing them.
// The reference model (overridable): d_model 512, d_ff 2048, 8 experts top-2, seq_len 256,
// 4 layers, 8 heads, vocab 8192, 16 sequences = 4096 tokens per step. Both figures come from
// the same process on the same core(s): sgemm through the suite's own gemm path, at the
// expert-MLP shape. model_gflops = 3 x forward FLOPs (6 x active parameters x tokens plus the
// attention score and mixing products) per second.
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "data/corpus.hpp"
#include "io/run_file.hpp"
#include "matmul.hpp"
#include "parallel/comm.hpp"
#include "programs/run_main.hpp"
#include "train/trainer.hpp"
#include "util/checked_parse.hpp"
#include "util/user_error.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

const std::vector<std::string> kReference = {"model.d_model=512",    "model.d_ff=2048",
                                             "model.num_experts=8",  "model.top_k=2",
                                             "model.seq_len=256",    "model.n_layers=4",
                                             "model.n_heads=8",      "model.vocab_size=8192",
                                             "train.batch_size=16",  "data.train_tokens=1000000",
                                             "data.val_tokens=16384"};

// Best-of-n sgemm rate at the shape of an expert's first matmul for one step's tokens.
double sgemm_gflops(int M, int N, int K, int reps) {
  moe::Buffer<float> a("a", moe::Index(M) * K), b("b", moe::Index(K) * N),
      c("c", moe::Index(M) * N);
  Kokkos::deep_copy(a, 0.5f);
  Kokkos::deep_copy(b, 0.25f);
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = clock_type::now();
    moe::gemm<float>(false, false, M, N, K, 1.0f, a.data(), K, b.data(), N, 0.0f, c.data(), N);
    moe::ExecSpace().fence();
    const double s = std::chrono::duration<double>(clock_type::now() - t0).count();
    best = std::max(best, 2.0 * M * N * K / s / 1e9);
  }
  return best;
}

int run(int argc, char** argv, int rank, int ranks) {
  std::string config_path, output;
  std::vector<std::string> sets = kReference;
  int steps = 3;
  {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto value = [&] {
        if (i + 1 >= argc) throw moe::UserError(a + " needs a value");
        return std::string(argv[++i]);
      };
      if (a == "--config")
        config_path = value();
      else if (a == "--set")
        sets.push_back(value());
      else if (a == "--steps")
        steps = int(moe::parse_integer(a, value(), 1, INT_MAX));
      else if (a == "--output")
        output = value();
      else if (a.rfind("--kokkos-", 0) == 0)
        continue;
      else
        throw moe::UserError("unknown argument '" + a +
                             "' (usage: moe-bench [--config F] [--set k=v ...] [--steps N])");
    }
    // A config file replaces the reference; --set still applies on top.
    if (!config_path.empty()) sets.erase(sets.begin(), sets.begin() + kReference.size());
    const moe::Config cfg = moe::load_config(config_path, sets);
    const moe::Corpus corpus = moe::load_corpus(cfg);
    if (cfg.train.batch_size % ranks != 0)
      throw moe::UserError("train.batch_size must be a multiple of the " + std::to_string(ranks) +
                           " MPI ranks");
    const int ep = cfg.parallel.expert_parallel == 0 ? ranks : cfg.parallel.expert_parallel;
    const moe::Comm comm(MPI_COMM_WORLD, ep);

    std::unique_ptr<moe::RunFile> file;
    if (!output.empty() && rank == 0) file = std::make_unique<moe::RunFile>(output);
    moe::Trainer trainer(cfg, corpus, file.get(), nullptr, &comm);
    trainer.step(0);  // warm-up: first-touch allocations, BLAS thread start
    const bool record = !output.empty();
    if (record) trainer.record_step(0, 0.0);
    moe::ExecSpace().fence();
    MPI_Barrier(MPI_COMM_WORLD);
    double record_secs = 0;
    const double mpi0 = moe::mpi_seconds();
    const auto t0 = clock_type::now();
    for (int s = 1; s <= steps; ++s) {
      trainer.step(s);
      if (!record) continue;
      const auto r0 = clock_type::now();
      trainer.record_step(s, 0.0);  // every per-step metric the training loop writes
      if (file) file->flush();      // and the flush it does (at most once a second) each step
      record_secs += std::chrono::duration<double>(clock_type::now() - r0).count();
    }
    moe::ExecSpace().fence();
    double secs = std::chrono::duration<double>(clock_type::now() - t0).count() / steps;
    double comm_secs = (moe::mpi_seconds() - mpi0) / steps;
    // The slowest rank sets the pace.
    MPI_Allreduce(MPI_IN_PLACE, &secs, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &comm_secs, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    const double overhead = record_secs / steps / secs;

    const double tokens = double(cfg.train.batch_size) * cfg.model.seq_len;
    // forward_flops counts this rank's share of the batch; every rank does the same share.
    const double model_gflops = 3.0 * trainer.model().forward_flops() * ranks / secs / 1e9;
    const double sgemm = sgemm_gflops(int(tokens) * cfg.model.top_k / cfg.model.num_experts,
                                      cfg.model.d_ff, cfg.model.d_model, 5);
    // ratio compares with the sgemm rate of all the ranks' cores together.
    if (rank == 0) {
      std::printf(
          "tokens_per_s=%.1f model_gflops=%.2f sgemm_gflops=%.2f ratio=%.3f step_s=%.3f "
          "ranks=%d comm_s_per_step=%.4f gemm=%s",
          tokens / secs, model_gflops, sgemm, model_gflops / (sgemm * ranks), secs, ranks,
          comm_secs, moe::gemm_backend());
      if (record) std::printf(" metrics_overhead=%.5f", overhead);
      std::printf("\n");
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
#if defined(OPENBLAS_VERSION) || defined(OPENBLAS_CONST)
  // One core: the benchmark compares the model with sgemm on the same single core.
  openblas_set_num_threads(1);
#endif
  return moe::run_mpi_main("moe-bench", argc, argv, [&](const moe::Runtime& rt) {
    return run(argc, argv, rt.rank(), rt.size());
  });
}
