// The finite-difference check of a whole MoE layer shared by the model and router tests: random
// input x [N,C], router weights [C,E], expert FFNs (w1, b1, w2, b2) and a projection r [N,C];
// the loss sum(out * r) + the layer's weighted auxiliary losses; every analytic gradient
// against central finite differences in double (norm-wise relative error below tol), and the
// router weights' gradient not zero (the router really learns).
#pragma once

#include <functional>
#include <sstream>
#include <vector>

#include "model/moe_layer.hpp"
#include "support.hpp"

namespace moe::test {

// Host values of one check: x [N,C], router weights [C,E] (uniform in [-range, range), none
// without router weights), the experts' w1 [E,C,F], b1 [E,F], w2 [E,F,C], b2 [E,C] and the
// projection r [N,C], drawn from seed + 1 .. seed + 7.
struct LayerInputs {
  std::vector<double> x, rw, w1, b1, w2, b2, r;
  LayerInputs(int N, int C, int F, int E, std::uint64_t seed, bool has_router_weights = true,
              double router_weight_range = 1.0)
      : x(random_vector(N * C, seed + 1)),
        rw(has_router_weights
               ? random_vector(C * E, seed + 2, -router_weight_range, router_weight_range)
               : std::vector<double>()),
        w1(random_vector(E * C * F, seed + 3, -0.5, 0.5)),
        b1(random_vector(E * F, seed + 4, -0.1, 0.1)),
        w2(random_vector(E * F * C, seed + 5, -0.5, 0.5)),
        b2(random_vector(E * C, seed + 6, -0.1, 0.1)),
        r(random_vector(N * C, seed + 7)) {}
};

struct LayerCheckOptions {
  bool has_router_weights = true;    // false: the layer gets no router weights (hash routing)
  double router_weight_range = 1.0;  // router weights uniform in [-range, range)
  double tol = 1e-6;
  // Assertions on the layer after the first forward (routing, dropped copies, losses); a fatal
  // failure there ends the check.
  std::function<void()> after_forward;
};

// A layer-shaped computation: forward(x, params, out) overwrites out and returns the weighted
// auxiliary loss; backward(dout, x, params, grads, dx) accumulates the gradients of the last
// forward.
using LayerForward =
    std::function<double(View1<const double>, const FfnTensors<double>&, View1<double>)>;
using LayerBackward =
    std::function<void(View1<const double>, View1<const double>, const FfnTensors<double>&,
                       const FfnTensors<double>&, View1<double>)>;

// The check for any layer-shaped computation with E experts of width C -> F -> C on N tokens;
// inputs are LayerInputs(N, C, F, E, seed, ...). Returns the analytic router-weight gradient [C,E]
// (empty without router weights).
inline std::vector<double> expect_gradients_match(const LayerForward& forward,
                                                  const LayerBackward& backward, int N, int C,
                                                  int F, int E, std::uint64_t seed,
                                                  const LayerCheckOptions& opt = {}) {
  LayerInputs in(N, C, F, E, seed, opt.has_router_weights, opt.router_weight_range);
  auto &x = in.x, &rw = in.rw, &w1 = in.w1, &b1 = in.b1, &w2 = in.w2, &b2 = in.b2;
  const auto& r = in.r;
  // Device copies of the current host values (an empty router_w without router weights).
  auto params = [&](Buffer<double>& rw_d, Buffer<double>& w1_d, Buffer<double>& b1_d,
                    Buffer<double>& w2_d, Buffer<double>& b2_d) {
    if (opt.has_router_weights) rw_d = to_device(rw);
    w1_d = to_device(w1);
    b1_d = to_device(b1);
    w2_d = to_device(w2);
    b2_d = to_device(b2);
    return FfnTensors<double>{rw_d, w1_d, b1_d, w2_d, b2_d};
  };
  auto loss = [&]() {
    Buffer<double> rw_d, w1_d, b1_d, w2_d, b2_d, out("out", N * C);
    const auto p = params(rw_d, w1_d, b1_d, w2_d, b2_d);
    const double aux = forward(to_device(x), p, out);
    return dot(to_host(out), r) + aux;
  };

  Buffer<double> rw_d, w1_d, b1_d, w2_d, b2_d;
  const auto p = params(rw_d, w1_d, b1_d, w2_d, b2_d);
  auto x_d = to_device(x), r_d = to_device(r);
  Buffer<double> out("out", N * C), dx("dx", N * C), dw1("dw1", w1.size()), db1("db1", b1.size()),
      dw2("dw2", w2.size()), db2("db2", b2.size()), drw;
  if (opt.has_router_weights) drw = Buffer<double>("drw", rw.size());
  const double aux = forward(x_d, p, out);
  std::ostringstream losses;
  losses << "weighted aux loss of the first forward: " << aux;
  SCOPED_TRACE(losses.str());
  if (opt.after_forward) {
    opt.after_forward();
    if (::testing::Test::HasFatalFailure()) return {};
  }
  backward(r_d, x_d, p, {drw, dw1, db1, dw2, db2}, dx);

  EXPECT_LT(rel_error(to_host(dx), numeric_gradient(x, loss)), opt.tol);
  std::vector<double> grw;
  if (opt.has_router_weights) {
    grw = to_host(drw);
    EXPECT_LT(rel_error(grw, numeric_gradient(rw, loss)), opt.tol);
  }
  EXPECT_LT(rel_error(to_host(dw1), numeric_gradient(w1, loss)), opt.tol);
  EXPECT_LT(rel_error(to_host(db1), numeric_gradient(b1, loss)), opt.tol);
  EXPECT_LT(rel_error(to_host(dw2), numeric_gradient(w2, loss)), opt.tol);
  EXPECT_LT(rel_error(to_host(db2), numeric_gradient(b2, loss)), opt.tol);
  if (opt.has_router_weights) {
    double norm = 0;
    for (double v : grw) norm += v * v;
    EXPECT_GT(norm, 1e-8) << "the router must learn";
  }
  return grw;
}

// The check for an MoeLayer routing with `ctx`.
inline std::vector<double> expect_layer_gradients_match(MoeLayer<double>& layer,
                                                        const RouteContext& ctx, int N, int C,
                                                        int F, int E, std::uint64_t seed,
                                                        const LayerCheckOptions& opt = {}) {
  return expect_gradients_match(
      [&](View1<const double> x, const FfnTensors<double>& p, View1<double> out) {
        layer.forward(ctx, x, p, out, N);
        return layer.losses().weighted;
      },
      [&](View1<const double> dout, View1<const double> x, const FfnTensors<double>& p,
          const FfnTensors<double>& g,
          View1<double> dx) { layer.backward(ctx, dout, x, p, g, dx, N); },
      N, C, F, E, seed, opt);
}

}  // namespace moe::test
