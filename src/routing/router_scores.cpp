// The router's scores (logits = router input x router weights) and its jitter: the part of
// routing every learned router shares, and the only randomness of routing besides what a
// strategy draws itself (MoEC's expert dropout).
#include "matmul.hpp"
#include "routing/router_jitter.hpp"
#include "routing/strategy.hpp"

namespace moe {

template <class Real>
View1<const Real> RouterJitter<Real>::apply(bool training, std::int64_t step, View1<const Real> x,
                                            Index n) {
  applied_ = training && eps_ > 0;
  if (!applied_) return x;
  if (Index(xr_.extent(0)) < n) {
    xr_ = Buffer<Real>(std::string("moe::router.jittered_input"), std::size_t(n));
    noise_ = Buffer<Real>(std::string("moe::router.jitter"), std::size_t(n));
  }
  View1<Real> xr = slice(xr_, 0, n), noise = slice(noise_, 0, n);
  const std::uint64_t key =
      mix64(seed_ ^ mix64(std::uint64_t(layer_) * 0x1000003ull + std::uint64_t(step)));
  const double eps = eps_;
  Kokkos::parallel_for(
      "moe::router_jitter", range(n), KOKKOS_LAMBDA(const Index i) {
        noise(i) = Real(1.0 - eps + 2.0 * eps * uniform01(key, std::uint64_t(i)));
        xr(i) = x(i) * noise(i);
      });
  return xr;
}

template <class Real>
void RouterJitter<Real>::backward(View1<const Real> d_input, View1<Real> dx, Index n) const {
  View1<const Real> noise = slice(noise_, 0, n);
  Kokkos::parallel_for(
      "moe::router_jitter_backward", range(n),
      KOKKOS_LAMBDA(const Index i) { dx(i) += d_input(i) * noise(i); });
}

template <class Real>
void Router<Real>::set_jitter(double eps, std::uint64_t seed, int layer) {
  jitter_ = RouterJitter<Real>(eps, seed, layer);
}

template <class Real>
void Router<Real>::score(const RouteContext& ctx, View1<const Real> x, View1<const Real> w,
                         View1<Real> logits, int N, int C) {
  const int E = int(w.extent(0)) / C;
  const ExecSpace exec;
  // The router multiplies in FP32 whatever train.matmul_precision says (Switch Transformer's
  // selective precision: its softmax exponentiates the logits, where bf16 errors grow).
  const MatmulPrecisionScope fp32_router(MatmulPrecision::fp32);
  linear_forward<Real>(exec, matrix(jitter_.apply(ctx.training, ctx.step, x, Index(N) * C), N, C),
                       matrix(w, C, E), View1<const Real>(), matrix(logits, N, E));
}

template <class Real>
void Router<Real>::score_backward(View1<const Real> dlogits, View1<const Real> x,
                                  View1<const Real> w, View1<Real> dx, View1<Real> dw, int N,
                                  int C) {
  const int E = int(w.extent(0)) / C;
  const ExecSpace exec;
  const MatmulPrecisionScope fp32_router(MatmulPrecision::fp32);  // as in score()
  if (!jitter_.applied()) {
    linear_backward<Real>(exec, matrix(dlogits, N, E), matrix(x, N, C), matrix(w, C, E),
                          matrix(dx, N, C), matrix(dw, C, E), View1<Real>());
    return;
  }
  // Through the jitter: d(x * noise)/dx = noise, elementwise.
  const Index n = Index(N) * C;
  if (Index(dinput_.extent(0)) < n)
    dinput_ = Buffer<Real>(std::string("moe::router.jittered_input_grad"), std::size_t(n));
  View1<Real> dinput = slice(dinput_, 0, n);
  fill_zero<Real>(dinput, n);
  linear_backward<Real>(exec, matrix(dlogits, N, E), matrix(jitter_.jittered(n), N, C),
                        matrix(w, C, E), matrix(dinput, N, C), matrix(dw, C, E), View1<Real>());
  jitter_.backward(dinput, dx, n);
}

template class RouterJitter<float>;
template class RouterJitter<double>;
template class Router<float>;
template class Router<double>;

}  // namespace moe
