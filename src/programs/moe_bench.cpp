// moe-bench: training-step throughput of the reference model against the machine's own sgemm.
//   moe-bench [--config F] [--set section.key=value ...] [--steps N] [--output RUN.h5]
//             [--counters] [--profile]
// With --output the steps also record every metric to a run file, and metrics_overhead= is the
// share of step time spent writing them. With the suite's Kokkos Tools counter loaded
// (--counters loads the one built beside moe-bench; or KOKKOS_PROFILE_LIBRARY /
// KOKKOS_TOOLS_LIBS) a second line gives kernel launches, fences, deep copies, reductions and
// host-blocking syncs per timed step. --profile fences at every phase boundary and prints the
// last step's time per phase (a normal run never fences for timing).
// The reference model (overridable): d_model 512, d_ff 2048, 8 experts top-2, seq_len 256,
// 4 layers, 8 heads, vocab 8192, 16 sequences = 4096 tokens per step. Both figures come from
// the same process on the same core(s): sgemm through the suite's own gemm path, at the
// expert-MLP shape, in the run's train.matmul_precision (precision= on the line).
// model_gflops = 3 x forward FLOPs (6 x active parameters x tokens plus the attention score and
// mixing products) per second.
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
#include "programs/bench_counters.hpp"
#include "programs/command_line.hpp"
#include "programs/run_main.hpp"
#include "train/trainer.hpp"
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

struct Options {
  std::string config_path, output;
  std::vector<std::string> sets;
  int steps = 3;
  bool counters = false, profile = false;
};

// False when --help was given.
bool parse_args(int argc, char** argv, Options& o, bool print_help) {
  CLI::App app("Training-step throughput of the reference model against the machine's sgemm.",
               "moe-bench");
  moe::add_config_options(app, o.config_path, o.sets);
  moe::add_integer(app, "--steps", o.steps, 1, INT_MAX, "timed steps after one warm-up step");
  moe::add_nonempty(app, "--output", o.output, "a file path",
                    "also record every metric to this run file (metrics_overhead=)");
  app.add_flag("--counters", o.counters,
               "load the Kokkos Tools counter built beside moe-bench; print launches, fences, "
               "deep copies and host syncs per step");
  app.add_flag("--profile", o.profile,
               "fence at every phase boundary and print the time per phase of the last step");
  if (!moe::parse_command_line(app, argc, argv, print_help)) return false;
  // A config file replaces the reference; --set still applies on top.
  if (o.config_path.empty()) o.sets.insert(o.sets.begin(), kReference.begin(), kReference.end());
  return true;
}

struct Timing {
  moe::CounterTotals before, after;  // the counter's totals around the timed steps
  double step_s = 0;                 // per step, the slowest rank's
  double comm_s = 0;                 // MPI time per step, the slowest rank's
  double record_s = 0;               // writing metrics, per step (this rank)
  double gemm_calls = 0;             // library products per step, as cuBLAS calls (this rank)
};

// Times `steps` steps after one warm-up step; with record, each step also records every metric
// the training loop writes (and file, on rank 0, is flushed as the loop does at most once a
// second).
Timing time_steps(moe::Trainer& trainer, moe::RunFile* file, bool record, int steps) {
  trainer.step(0);  // warm-up: first-touch allocations, BLAS thread start
  if (record) trainer.record_step(0, 0.0);
  moe::ExecSpace().fence();
  MPI_Barrier(MPI_COMM_WORLD);
  double record_secs = 0;
  Timing t;
  t.before = moe::read_counters();
  const std::int64_t gemm0 = moe::gemm_call_count();
  const double mpi0 = moe::mpi_seconds();
  const auto t0 = clock_type::now();
  for (int s = 1; s <= steps; ++s) {
    trainer.step(s);
    if (!record) continue;
    const auto r0 = clock_type::now();
    trainer.record_step(s, 0.0);
    if (file) file->flush();
    record_secs += std::chrono::duration<double>(clock_type::now() - r0).count();
  }
  moe::ExecSpace().fence();
  t.after = moe::read_counters();
  t.gemm_calls = double(moe::gemm_call_count() - gemm0) / steps;
  t.step_s = std::chrono::duration<double>(clock_type::now() - t0).count() / steps;
  t.comm_s = (moe::mpi_seconds() - mpi0) / steps;
  t.record_s = record_secs / steps;
  // The slowest rank sets the pace.
  MPI_Allreduce(MPI_IN_PLACE, &t.step_s, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  MPI_Allreduce(MPI_IN_PLACE, &t.comm_s, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return t;
}

// Prints the throughput line; returns the same-run sgemm rate (one core).
double print_result(const moe::Config& cfg, moe::Trainer& trainer, const Timing& t, int ranks,
                    bool record) {
  const double secs = t.step_s;
  const double tokens = double(cfg.train.batch_size) * cfg.model.seq_len;
  // forward_flops counts this rank's share of the batch; every rank does the same share.
  const double model_gflops = 3.0 * trainer.model().forward_flops() * ranks / secs / 1e9;
  const double sgemm = sgemm_gflops(int(tokens) * cfg.model.top_k / cfg.model.num_experts,
                                    cfg.model.d_ff, cfg.model.d_model, 5);
  // ratio compares with the sgemm rate of all the ranks' cores together.
  std::printf(
      "tokens_per_s=%.1f model_gflops=%.2f sgemm_gflops=%.2f ratio=%.3f step_s=%.6f "
      "ranks=%d comm_s_per_step=%.4f gemm=%s blas=%s precision=%s",
      tokens / secs, model_gflops, sgemm, model_gflops / (sgemm * ranks), secs, ranks, t.comm_s,
      moe::gemm_backend(), MOE_BLAS_VENDOR, cfg.train.matmul_precision.c_str());
  if (record) std::printf(" metrics_overhead=%.5f", t.record_s / secs);
  std::printf("\n");
  return sgemm;
}

// Per timed step, from the counter's totals, with the library products counted as cuBLAS calls
// (nothing when the counter is not loaded).
void print_counters(const Timing& t) {
  if (!t.after.loaded) return;
  const double n = double(t.after.steps - t.before.steps);
  if (n <= 0) return;
  auto per = [&](std::uint64_t a, std::uint64_t b) { return double(a - b) / n; };
  std::printf(
      "counters: steps=%.0f launches_per_step=%.1f fences_per_step=%.1f "
      "deep_copies_per_step=%.1f reduces_per_step=%.1f host_syncs_per_step=%.1f "
      "gemm_calls_per_step=%.1f\n",
      n, per(t.after.launches, t.before.launches), per(t.after.fences, t.before.fences),
      per(t.after.deep_copies, t.before.deep_copies), per(t.after.reduces, t.before.reduces),
      per(t.after.host_syncs, t.before.host_syncs), t.gemm_calls);
}

// The last step's seconds per phase (--profile), and the FLOP rates of the two phases that are
// mostly GEMMs: forward + backward = 3 x the forward FLOPs of the phase's products (attention:
// the projections plus scores and mixing over the full S x S square, as model_gflops counts
// them; experts: the expert MLPs, or the dense FFN), with the experts' rate as a share of
// sgemm_gflops.
void print_phases(moe::Trainer& trainer, double sgemm) {
  std::printf("phases:");
  const auto& secs = trainer.last_metrics().phase_seconds;
  for (int p = 0; p < moe::kNumPhases; ++p) std::printf(" %s_s=%.4f", moe::phase_name(p), secs[p]);
  std::printf("\n");
  const auto flops = trainer.model().forward_flop_parts();
  const double experts_s = secs[int(moe::Phase::ExpertsFwd)] + secs[int(moe::Phase::ExpertsBwd)];
  const double attention_s =
      secs[int(moe::Phase::AttentionFwd)] + secs[int(moe::Phase::AttentionBwd)];
  const double experts = experts_s > 0 ? 3.0 * flops.ffn / experts_s / 1e9 : 0.0;
  const double attention = attention_s > 0 ? 3.0 * flops.attention / attention_s / 1e9 : 0.0;
  std::printf("phase_rates: experts_gflops=%.2f experts_vs_sgemm=%.3f attention_gflops=%.2f\n",
              experts, sgemm > 0 ? experts / sgemm : 0.0, attention);
}

int run(int argc, char** argv, int rank, int ranks) {
  Options o;
  if (!parse_args(argc, argv, o, rank == 0)) return 0;
  const moe::Config cfg = moe::load_config(o.config_path, o.sets);
  const moe::Corpus corpus = moe::load_corpus(cfg);
  if (cfg.train.batch_size % ranks != 0)
    throw moe::UserError("train.batch_size must be a multiple of the " + std::to_string(ranks) +
                         " MPI ranks");
  const int ep = cfg.parallel.expert_parallel == 0 ? ranks : cfg.parallel.expert_parallel;
  const moe::Comm comm(MPI_COMM_WORLD, ep);
  std::unique_ptr<moe::RunFile> file;
  if (!o.output.empty() && rank == 0) file = std::make_unique<moe::RunFile>(o.output);
  moe::Trainer trainer(cfg, corpus, file.get(), nullptr, &comm);
  if (o.profile) trainer.set_profiling(true);
  const Timing t = time_steps(trainer, file.get(), !o.output.empty(), o.steps);
  if (rank != 0) return 0;
  const double sgemm = print_result(cfg, trainer, t, ranks, !o.output.empty());
  print_counters(t);
  if (o.counters && !t.after.loaded)
    std::fprintf(stderr, "moe-bench: --counters: Kokkos did not load the counter library\n");
  if (o.profile) print_phases(trainer, sgemm);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
#if defined(OPENBLAS_VERSION) || defined(OPENBLAS_CONST)
  // One core: the benchmark compares the model with sgemm on the same single core.
  openblas_set_num_threads(1);
#endif
  // The counter library must be named before Kokkos starts.
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--counters" && !moe::request_counters()) {
      std::fprintf(stderr,
                   "moe-bench: --counters: libmoe_kokkos_counters.so is not beside the "
                   "executable; set KOKKOS_PROFILE_LIBRARY to it\n");
      return 2;
    }
  return moe::run_mpi_main("moe-bench", argc, argv, [&](const moe::Runtime& rt) {
    return run(argc, argv, rt.rank(), rt.size());
  });
}
