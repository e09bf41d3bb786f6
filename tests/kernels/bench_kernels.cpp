// moe-kernel-bench: times the model's kernels one by one at the reference shape (d_model 512,
// d_ff 2048, 8 heads, seq_len 256, 16 sequences, vocab 8192, 8 experts top-2) and prints
// min/median/max wall and thread-CPU milliseconds over `reps` runs, with GFLOP/s for the gemm-bound
// ones and the same-process sgemm rate at the expert shape for comparison. Not a test: nothing is
// asserted.
//   moe-kernel-bench [reps] [filter]   (filter: only kernels whose name contains it)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <string>
#include <vector>

#include "attention.hpp"
#include "embedding.hpp"
#include "layernorm.hpp"
#include "matmul.hpp"
#include "mlp.hpp"

using namespace moe;

namespace {

constexpr int B = 16, S = 256, C = 512, H = 8, F = 2048, V = 8192, E = 8, K = 2;
constexpr int N = B * S;

Buffer<float> filled(const char* label, Index n, float scale) {
  Buffer<float> b{std::string(label), std::size_t(n)};
  Kokkos::parallel_for(
      "bench_fill", range(n), KOKKOS_LAMBDA(const Index i) {
        b(i) = scale * float(mix64(std::uint64_t(i)) >> 40) / float(1 << 24) - scale / 2;
      });
  return b;
}

// This thread's CPU time: less disturbed than wall time by other jobs on a shared machine.
double cpu_ms() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

struct Bench {
  int reps;
  std::string filter;
  void run(const std::string& name, double gflop, const std::function<void()>& f) const {
    if (!filter.empty() && name.find(filter) == std::string::npos) return;
    f();  // warm-up
    ExecSpace().fence();
    std::vector<double> ms, cpu;
    for (int r = 0; r < reps; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      const double c0 = cpu_ms();
      f();
      ExecSpace().fence();
      cpu.push_back(cpu_ms() - c0);
      ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    std::sort(cpu.begin(), cpu.end());
    std::printf("%-26s wall min/med/max %8.2f %8.2f %8.2f  cpu %8.2f %8.2f %8.2f ms", name.c_str(),
                ms.front(), ms[ms.size() / 2], ms.back(), cpu.front(), cpu[cpu.size() / 2],
                cpu.back());
    if (gflop > 0) std::printf("   %6.1f GFLOP/s (cpu min)", gflop / cpu.front() * 1e3);
    std::printf("\n");
  }
};

void bench_attention(const Bench& bench) {
  auto qkv = filled("qkv", Index(N) * 3 * C, 2.f), out = filled("out", Index(N) * C, 0.f);
  auto att = filled("att", Index(B) * H * S * S, 0.f),
       datt = filled("datt", Index(B) * H * S * S, 0.f);
  auto dout = filled("dout", Index(N) * C, 1.f), dqkv = filled("dqkv", Index(N) * 3 * C, 0.f);
  ScoreView<float> a(att.data(), B, H, S, S), da(datt.data(), B, H, S, S);
  // Useful FLOPs of the causal products: half the S x S square (2 products fwd, 4 bwd).
  const double half = 2.0 * B * H * double(S) * (S + 1) / 2 * (C / H) / 1e9;
  for (int T : {32, 64, 128, S}) {
    const std::string t = "_T" + std::to_string(T);
    bench.run("attention_forward" + t, 2 * half, [&] {
      attention_forward<float>(ExecSpace(), matrix(qkv, N, 3 * C), a, matrix(out, N, C), T);
    });
    bench.run("attention_backward" + t, 4 * half, [&] {
      attention_backward<float>(ExecSpace(), matrix(dout, N, C), matrix(qkv, N, 3 * C), a, da,
                                matrix(dqkv, N, 3 * C), T);
    });
  }
}

void bench_linear(const Bench& bench) {
  auto x = filled("x", Index(N) * C, 1.f), w = filled("w", Index(C) * F, 0.1f);
  auto b = filled("b", F, 0.1f), y = filled("y", Index(N) * F, 0.f);
  auto dy = filled("dy", Index(N) * F, 1.f), dw = filled("dw", Index(C) * F, 0.f);
  auto db = filled("db", F, 0.f);
  const double fl = 2.0 * N * C * F / 1e9;
  bench.run("sgemm_NxCxF", fl, [&] {
    gemm<float>(false, false, N, F, C, 1.f, x.data(), C, w.data(), F, 0.f, y.data(), F);
  });
  bench.run("linear_forward_bias", fl, [&] {
    linear_forward<float>(ExecSpace(), matrix(x, N, C), matrix(w, C, F), b, matrix(y, N, F));
  });
  bench.run("linear_backward_dw_db", fl, [&] {
    linear_backward<float>(ExecSpace(), matrix(dy, N, F), matrix(x, N, C), matrix(w, C, F),
                           View2<float>(), matrix(dw, C, F), db);
  });
  bench.run("linear_backward_dw", fl, [&] {
    linear_backward<float>(ExecSpace(), matrix(dy, N, F), matrix(x, N, C), matrix(w, C, F),
                           View2<float>(), matrix(dw, C, F), View1<float>());
  });
}

void bench_elementwise(const Bench& bench) {
  auto x = filled("x", Index(N) * C, 2.f), out = filled("out", Index(N) * C, 0.f);
  auto g = filled("g", C, 1.f), be = filled("be", C, 1.f), mean = filled("m", N, 0.f);
  auto rstd = filled("r", N, 0.f), dx = filled("dx", Index(N) * C, 0.f);
  auto dg = filled("dg", C, 0.f), db = filled("db", C, 0.f);
  bench.run("layernorm_forward", 0, [&] {
    layernorm_forward<float>(ExecSpace(), matrix(x, N, C), g, be, matrix(out, N, C), mean, rstd);
  });
  bench.run("layernorm_backward", 0, [&] {
    layernorm_backward<float>(ExecSpace(), matrix(out, N, C), matrix(x, N, C), g, mean, rstd,
                              matrix(dx, N, C), dg, db);
  });
  auto pre = filled("pre", Index(N) * F, 4.f), act = filled("act", Index(N) * F, 0.f);
  auto dact = filled("dact", Index(N) * F, 1.f);
  const Index m = Index(N) * F;
  bench.run("gelu_forward", 0, [&] { gelu_forward<float>(ExecSpace(), pre, act, m); });
  bench.run("gelu_backward", 0, [&] { gelu_backward<float>(ExecSpace(), pre, dact, act, m); });
  Kokkos::View<int*, MemSpace> tok("tok", N);
  Kokkos::parallel_for(
      "bench_tok", range(N), KOKKOS_LAMBDA(const Index i) { tok(i) = int(mix64(i) % V); });
  auto wte = filled("wte", Index(V) * C, 0.1f), wpe = filled("wpe", Index(S) * C, 0.1f);
  View1<const int> tokens(tok.data(), N);
  bench.run("embedding_forward", 0, [&] {
    embedding_forward<float>(ExecSpace(), tokens, matrix(wte, V, C), matrix(wpe, S, C),
                             matrix(out, N, C));
  });
  bench.run("embedding_backward", 0, [&] {
    embedding_backward<float>(ExecSpace(), tokens, matrix(x, N, C), matrix(wte, V, C),
                              matrix(wpe, S, C));
  });
}

void bench_experts(const Bench& bench) {
  const int R = N * K;  // token copies, R / E per expert
  auto x = filled("x", Index(R) * C, 2.f), out = filled("out", Index(R) * C, 0.f);
  auto w1 = filled("w1", Index(E) * C * F, 0.1f), b1 = filled("b1", Index(E) * F, 0.1f);
  auto w2 = filled("w2", Index(E) * C * F, 0.1f), b2 = filled("b2", Index(E) * C, 0.1f);
  auto pre = filled("pre", Index(R) * F, 0.f), act = filled("act", Index(R) * F, 0.f);
  auto dpre = filled("dpre", Index(R) * F, 0.f), dx = filled("dx", Index(R) * C, 0.f);
  auto gw1 = filled("gw1", Index(E) * C * F, 0.f), gb1 = filled("gb1", Index(E) * F, 0.f);
  auto gw2 = filled("gw2", Index(E) * C * F, 0.f), gb2 = filled("gb2", Index(E) * C, 0.f);
  std::vector<int> offsets;
  for (int e = 0; e <= E; ++e) offsets.push_back(e * (R / E));
  MlpWeights<float> w(w1, b1, w2, b2), g(gw1, gb1, gw2, gb2);
  MlpActivations<float> a{matrix(pre, R, F), matrix(act, R, F)};
  MlpActivations<const float> ca{a.pre, a.act};
  const double fl = 2.0 * 2.0 * R * C * F / 1e9;
  const int M = R / E;
  auto c = filled("c", Index(M) * F, 0.f);
  bench.run("sgemm_expert_shape", 2.0 * M * C * F / 1e9, [&] {
    gemm<float>(false, false, M, F, C, 1.f, x.data(), C, w1.data(), F, 0.f, c.data(), F);
  });
  bench.run("experts_forward", fl, [&] {
    mlp_forward<float>(ExecSpace(), matrix(x, R, C), w, a, matrix(out, R, C), offsets);
  });
  bench.run("experts_backward", 2 * fl, [&] {
    mlp_backward<float>(ExecSpace(), matrix(out, R, C), matrix(x, R, C), ca, w, matrix(dpre, R, F),
                        matrix(dx, R, C), g, offsets);
  });
}

}  // namespace

int main(int argc, char** argv) {
  Kokkos::ScopeGuard guard(argc, argv);
  Bench bench{argc > 1 ? std::max(1, std::atoi(argv[1])) : 5, argc > 2 ? argv[2] : ""};
  std::printf("gemm=%s reps=%d\n", gemm_backend(), bench.reps);
  bench_attention(bench);
  bench_linear(bench);
  bench_elementwise(bench);
  bench_experts(bench);
  return 0;
}
