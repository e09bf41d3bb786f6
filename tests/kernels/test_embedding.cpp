// Token + position embedding: forward against plain loops, backward against finite differences.
#include "embedding.hpp"
#include "support.hpp"

using namespace moe;
using namespace moe::test;

namespace {
const int kV = 5, kS = 4, kB = 3, kC = 6, kN = kB * kS;
// Repeated ids (accumulation into one wte row) and an unused id (4: its gradient stays 0).
const std::vector<int> kTokens = {1, 3, 1, 0, 2, 2, 1, 3, 0, 1, 2, 1};

std::vector<double> ref_embedding(const std::vector<int>& tok, const std::vector<double>& wte,
                                  const std::vector<double>& wpe) {
  std::vector<double> out(std::size_t(kN) * kC);
  for (int n = 0; n < kN; ++n)
    for (int c = 0; c < kC; ++c) out[n * kC + c] = wte[tok[n] * kC + c] + wpe[(n % kS) * kC + c];
  return out;
}
}  // namespace

TEST(Embedding, ForwardMatchesReference) {
  auto wte = random_vector(kV * kC, 1), wpe = random_vector(kS * kC, 2);
  auto dtok = to_device(kTokens);
  auto dwte = to_device(wte), dwpe = to_device(wpe);
  Buffer<double> out("out", kN * kC);
  embedding_forward<double>(ExecSpace(), dtok, matrix(dwte, kV, kC), matrix(dwpe, kS, kC),
                            matrix(out, kN, kC));
  EXPECT_EQ(to_host(out), ref_embedding(kTokens, wte, wpe));  // a single add: exact
}

TEST(Embedding, BackwardMatchesFiniteDifferences) {
  auto wte = random_vector(kV * kC, 3), wpe = random_vector(kS * kC, 4);
  auto r = random_vector(kN * kC, 5);  // loss = sum(out * r)
  auto dtok = to_device(kTokens);
  auto forward = [&]() {
    auto dwte = to_device(wte), dwpe = to_device(wpe);
    Buffer<double> out("out", kN * kC);
    embedding_forward<double>(ExecSpace(), dtok, matrix(dwte, kV, kC), matrix(dwpe, kS, kC),
                              matrix(out, kN, kC));
    return dot(to_host(out), r);
  };
  // Start the gradients from nonzero values to check that the backward accumulates.
  auto g0te = random_vector(kV * kC, 6), g0pe = random_vector(kS * kC, 7);
  auto gte = to_device(g0te), gpe = to_device(g0pe), dr = to_device(r);
  embedding_backward<double>(ExecSpace(), dtok, matrix(dr, kN, kC), matrix(gte, kV, kC),
                             matrix(gpe, kS, kC));
  auto hte = to_host(gte), hpe = to_host(gpe);
  for (std::size_t i = 0; i < hte.size(); ++i) hte[i] -= g0te[i];
  for (std::size_t i = 0; i < hpe.size(); ++i) hpe[i] -= g0pe[i];
  EXPECT_LT(rel_error(hte, numeric_gradient(wte, forward)), 1e-6);
  EXPECT_LT(rel_error(hpe, numeric_gradient(wpe, forward)), 1e-6);
  for (int c = 0; c < kC; ++c) EXPECT_EQ(hte[4 * kC + c], 0.0);  // token 4 never appears
}
