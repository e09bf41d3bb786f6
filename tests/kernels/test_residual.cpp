// The residual connection: forward against a plain sum; its gradient (the identity into both
// branches, which the model gets by accumulating into one buffer) against finite differences.
#include "residual.hpp"
#include "support.hpp"

using namespace moe;
using namespace moe::test;

TEST(Residual, ForwardMatchesReference) {
  const int n = 37;
  auto a = random_vector(n, 1), b = random_vector(n, 2);
  auto da = to_device(a), db = to_device(b);
  Buffer<double> out("out", n);
  residual_forward<double>(ExecSpace(), matrix(da, 1, n), matrix(db, 1, n), matrix(out, 1, n));
  auto o = to_host(out);
  for (int i = 0; i < n; ++i) EXPECT_EQ(o[i], a[i] + b[i]);
}

TEST(Residual, GradientIsTheIdentityIntoBothBranches) {
  const int n = 11;
  auto a = random_vector(n, 3), b = random_vector(n, 4), r = random_vector(n, 5);
  auto loss = [&]() {
    auto da = to_device(a), db = to_device(b);
    Buffer<double> out("out", n);
    residual_forward<double>(ExecSpace(), matrix(da, 1, n), matrix(db, 1, n), matrix(out, 1, n));
    return dot(to_host(out), r);
  };
  EXPECT_LT(rel_error(numeric_gradient(a, loss), r), 1e-6);
  EXPECT_LT(rel_error(numeric_gradient(b, loss), r), 1e-6);
}
