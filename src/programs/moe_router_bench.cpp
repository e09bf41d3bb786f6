// moe-router-bench: time of the routing kernels for one batch of router probabilities (softmax,
// top-k, z-loss, the three fused as a top-k router runs them, and expert choice).
//   moe-router-bench [--tokens N] [--experts E] [--top-k K] [--capacity-factor F] [--reps R]
// Prints, for float probabilities drawn uniformly (then row-normalised by the softmax), the best
// of R timed calls (after one warm-up) of: the row softmax over E experts, top-k selection, and
// expert choice's per-expert selection of C = ceil(N F / E) tokens, with the default execution
// space fenced after each call. Bad arguments: one line on stderr, exit 2.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "common.hpp"
#include "expert_choice.hpp"
#include "parallel/runtime.hpp"
#include "programs/command_line.hpp"
#include "programs/run_main.hpp"
#include "router.hpp"
#include "util/checked_parse.hpp"
#include "util/user_error.hpp"

namespace moe_router_bench {

using moe::Index;

struct Options {
  int tokens = 4096, experts = 64, top_k = 2, reps = 5;
  double capacity_factor = 2.0;
};

// False when --help was given.
bool parse(int argc, char** argv, Options& o, bool print_help) {
  CLI::App app("Times the routing kernels for one batch of router probabilities.",
               "moe-router-bench");
  moe::add_integer(app, "--tokens", o.tokens, 1, 1 << 24, "tokens N in the batch");
  moe::add_integer(app, "--experts", o.experts, 1, 4096, "experts E");
  moe::add_integer(app, "--top-k", o.top_k, 1, 4096, "experts per token K (<= E)");
  app.add_option_function<std::string>(
         "--capacity-factor",
         [&o](const std::string& text) {
           const std::string rule = "(allowed: a number > 0)";
           try {
             o.capacity_factor = moe::parse_number("--capacity-factor", text, 0);
           } catch (const moe::UserError&) {
             o.capacity_factor = 0;
           }
           if (!(o.capacity_factor > 0))
             throw moe::UserError("--capacity-factor '" + text + "' " + rule);
         },
         "expert choice takes C = ceil(N F / E) tokens per expert (a number > 0)")
      ->type_name("F")
      ->default_str("2");
  moe::add_integer(app, "--reps", o.reps, 1, 1000, "timed calls (best of) after one warm-up");
  if (!moe::parse_command_line(app, argc, argv, print_help)) return false;
  if (o.top_k > o.experts)
    throw moe::UserError("--top-k " + std::to_string(o.top_k) + " exceeds --experts " +
                         std::to_string(o.experts) + " (allowed: 1..experts)");
  return true;
}

template <class F>
double best_seconds(int reps, F&& call) {
  call();  // warm-up
  moe::ExecSpace().fence();
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    call();
    moe::ExecSpace().fence();
    best = std::min(best,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

int run(const Options& o) {
  const int N = o.tokens, E = o.experts, K = o.top_k;
  const Index NE = Index(N) * E;
  const int C = int(std::min<double>(N, std::ceil(double(N) * o.capacity_factor / E)));
  moe::Buffer<float> lse2("lse2", N);
  moe::Buffer<float> logits("logits", NE), probs("probs", NE), val("val", Index(N) * K),
      gate("gate", NE);
  moe::Buffer<int> idx("idx", Index(N) * K), expert_of("expert_of", NE), counts("counts", E);
  Kokkos::parallel_for(
      "moe::router_bench_fill", moe::range(NE),
      KOKKOS_LAMBDA(const Index i) { logits(i) = float(4.0 * moe::uniform01(11, i)); });
  moe::softmax_rows_forward<float>(logits, probs, N, E);

  std::printf("# moe-router-bench: %s, N=%d tokens, E=%d experts, top-%d, expert choice C=%d\n",
              moe::Runtime::backend_name(), N, E, K, C);
  std::printf("%-16s %12s\n", "kernel", "best_ms");
  auto row = [](const char* name, double s) { std::printf("%-16s %12.4f\n", name, s * 1e3); };
  row("softmax",
      best_seconds(o.reps, [&] { moe::softmax_rows_forward<float>(logits, probs, N, E); }));
  row("topk", best_seconds(o.reps, [&] { moe::topk_rows<float>(probs, idx, val, N, E, K); }));
  volatile float sink = 0;  // the reductions' results are used: not optimised away
  row("zloss",
      best_seconds(o.reps, [&] { sink = moe::router_zloss_forward<float>(logits, N, E); }));
  // What a top-k router's forward runs: the three above in one row pass (the lse^2 per token is
  // summed later, with the balance statistics).
  row("topk_route", best_seconds(o.reps, [&] {
        moe::topk_route_forward<float>(logits, probs, idx, val, lse2, N, E, K);
      }));
  row("expert_choice", best_seconds(o.reps, [&] {
        moe::expert_choice_forward<float>(probs, expert_of, gate, counts, N, E, C);
      }));
  return 0;
}

}  // namespace moe_router_bench

int main(int argc, char** argv) {
  return moe::run_mpi_main("moe-router-bench", argc, argv, [&](const moe::Runtime& rt) {
    moe_router_bench::Options o;
    if (!moe_router_bench::parse(argc, argv, o, rt.rank() == 0)) return 0;
    return moe_router_bench::run(o);
  });
}
