// Causal multi-head attention: forward against plain loops, backward against finite
// differences, and causality (outputs never depend on later tokens).
#include "attention.hpp"
#include "support.hpp"

using namespace moe;
using namespace moe::test;

namespace {

struct RefAttention {
  std::vector<double> att, out;
};

// Reference: per (b, h, s) softmax over t <= s of q_s . k_t / sqrt(hd), then the weighted sum
// of v_t. Plain loops over the documented layout.
RefAttention ref_attention(const std::vector<double>& qkv, int B, int S, int C, int H) {
  const int hd = C / H;
  RefAttention r{std::vector<double>(std::size_t(B) * H * S * S, 0.0),
                 std::vector<double>(std::size_t(B) * S * C, 0.0)};
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h)
      for (int s = 0; s < S; ++s) {
        const double* q = &qkv[(std::size_t(b) * S + s) * 3 * C + h * hd];
        std::vector<double> w(s + 1);
        double mx = -1e300;
        for (int t = 0; t <= s; ++t) {
          const double* k = &qkv[(std::size_t(b) * S + t) * 3 * C + C + h * hd];
          double dotqk = 0;
          for (int i = 0; i < hd; ++i) dotqk += q[i] * k[i];
          w[t] = dotqk / std::sqrt(double(hd));
          mx = std::max(mx, w[t]);
        }
        double z = 0;
        for (int t = 0; t <= s; ++t) z += (w[t] = std::exp(w[t] - mx));
        for (int t = 0; t <= s; ++t) {
          w[t] /= z;
          r.att[((std::size_t(b) * H + h) * S + s) * S + t] = w[t];
          const double* v = &qkv[(std::size_t(b) * S + t) * 3 * C + 2 * C + h * hd];
          for (int i = 0; i < hd; ++i)
            r.out[(std::size_t(b) * S + s) * C + h * hd + i] += w[t] * v[i];
        }
      }
  return r;
}

template <class Real>
std::vector<double> run_forward(const std::vector<double>& qkv, int B, int S, int C, int H,
                                std::vector<double>* att_out = nullptr,
                                int block_rows = kAttentionBlockRows) {
  std::vector<Real> q(qkv.begin(), qkv.end());
  auto dq = to_device(q);
  Buffer<Real> att("att", std::size_t(B) * H * S * S), out("out", std::size_t(B) * S * C);
  attention_forward<Real>(ExecSpace(), matrix(dq, B * S, 3 * C),
                          ScoreView<Real>(att.data(), B, H, S, S), matrix(out, B * S, C),
                          block_rows);
  if (att_out) {
    auto a = to_host(att);
    att_out->assign(a.begin(), a.end());
  }
  auto o = to_host(out);
  return std::vector<double>(o.begin(), o.end());
}

}  // namespace

TEST(Attention, ForwardMatchesReference) {
  const int shapes[][4] = {{2, 5, 8, 2}, {3, 7, 12, 3}, {1, 1, 4, 1}};
  for (const auto& sh : shapes) {
    const int B = sh[0], S = sh[1], C = sh[2], H = sh[3];
    auto qkv = random_vector(std::size_t(B) * S * 3 * C, 11, -2.0, 2.0);
    const auto ref = ref_attention(qkv, B, S, C, H);
    std::vector<double> att;
    EXPECT_LT(rel_error(run_forward<double>(qkv, B, S, C, H, &att), ref.out), 1e-13);
    EXPECT_LT(rel_error(att, ref.att), 1e-13);
    // The training precision agrees to float rounding.
    EXPECT_LT(rel_error(run_forward<float>(qkv, B, S, C, H), ref.out), 1e-5);
    // Row blocks of any height (the last one shorter or not) give the same result.
    for (int T : {1, 2, 3, 4, kAttentionBlockRowsHost, kAttentionBlockRowsDevice}) {
      EXPECT_LT(rel_error(run_forward<double>(qkv, B, S, C, H, &att, T), ref.out), 1e-13) << T;
      EXPECT_LT(rel_error(att, ref.att), 1e-13) << T;
    }
  }
}

TEST(Attention, ForwardIsDeterministic) {
  const int B = 2, S = 9, C = 16, H = 4;
  auto qkv = random_vector(std::size_t(B) * S * 3 * C, 12);
  EXPECT_EQ(run_forward<float>(qkv, B, S, C, H), run_forward<float>(qkv, B, S, C, H));
}

namespace {

// The gradient check with row blocks of T rows (the forward run by the loss uses the default).
void check_backward(int T) {
  const int B = 2, S = 5, C = 8, H = 2;
  const std::size_t nqkv = std::size_t(B) * S * 3 * C, natt = std::size_t(B) * H * S * S;
  auto qkv = random_vector(nqkv, 13);
  auto r = random_vector(std::size_t(B) * S * C, 14);  // loss = sum(out * r)
  auto loss = [&]() { return dot(run_forward<double>(qkv, B, S, C, H), r); };

  auto dqkv_in = to_device(qkv), dr = to_device(r);
  Buffer<double> att("att", natt), out("out", std::size_t(B) * S * C);
  attention_forward<double>(ExecSpace(), matrix(dqkv_in, B * S, 3 * C),
                            ScoreView<double>(att.data(), B, H, S, S), matrix(out, B * S, C), T);
  // Scratch and gradient start as garbage: the backward writes every entry of both (the model
  // does not zero dqkv), so any leftover would show up as an error.
  auto datt = to_device(random_vector(natt, 15));
  auto grad = to_device(random_vector(nqkv, 16, 1e3, 2e3));
  attention_backward<double>(ExecSpace(), matrix(dr, B * S, C), matrix(dqkv_in, B * S, 3 * C),
                             ScoreView<double>(att.data(), B, H, S, S),
                             ScoreView<double>(datt.data(), B, H, S, S), matrix(grad, B * S, 3 * C),
                             T);
  const auto g = to_host(grad);
  EXPECT_LT(rel_error(g, numeric_gradient(qkv, loss)), 1e-6) << "block rows " << T;
  // The scratch holds dpre, zero above the diagonal.
  const auto dpre = to_host(datt);
  for (int bh = 0; bh < B * H; ++bh)
    for (int s = 0; s < S; ++s)
      for (int t = s + 1; t < S; ++t) EXPECT_EQ(dpre[(std::size_t(bh) * S + s) * S + t], 0.0);
}

}  // namespace

TEST(Attention, BackwardMatchesFiniteDifferences) {
  for (int T : {1, 2, 3, kAttentionBlockRowsHost, kAttentionBlockRowsDevice}) check_backward(T);
}

TEST(Attention, OutputDoesNotDependOnLaterTokens) {
  const int B = 2, S = 6, C = 8, H = 2;
  const auto qkv = random_vector(std::size_t(B) * S * 3 * C, 17);
  const auto base = run_forward<double>(qkv, B, S, C, H);
  for (int s = 0; s < S; ++s) {
    // Replace every token after s (in every sequence) with unrelated values.
    auto changed = qkv;
    const auto noise = random_vector(changed.size(), 100 + s, -5.0, 5.0);
    for (int b = 0; b < B; ++b)
      for (int t = s + 1; t < S; ++t)
        for (int i = 0; i < 3 * C; ++i) {
          const std::size_t j = (std::size_t(b) * S + t) * 3 * C + i;
          changed[j] = noise[j];
        }
    const auto out = run_forward<double>(changed, B, S, C, H);
    for (int b = 0; b < B; ++b)
      for (int t = 0; t <= s; ++t)
        for (int i = 0; i < C; ++i) {
          const std::size_t j = (std::size_t(b) * S + t) * C + i;
          EXPECT_NEAR(out[j], base[j], 1e-14) << "b=" << b << " s=" << s << " t=" << t;
        }
  }
  // Sanity: the check is not vacuous, changing token s itself does change output s.
  auto changed = qkv;
  for (int i = 0; i < 3 * C; ++i) changed[std::size_t(S - 1) * 3 * C + i] += 0.5;
  const auto out = run_forward<double>(changed, B, S, C, H);
  double diff = 0;
  for (int i = 0; i < C; ++i)
    diff += std::abs(out[std::size_t(S - 1) * C + i] - base[std::size_t(S - 1) * C + i]);
  EXPECT_GT(diff, 1e-3);
}
