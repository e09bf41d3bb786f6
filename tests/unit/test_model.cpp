// The MoE layer and the whole transformer: gradients against finite differences in double
// (router, dropped tokens and auxiliary losses included), bit-for-bit determinism, and the
// one-expert MoE equalling the dense model; the router's jitter, the local token dispatcher; the
// trainer's final checkpoint and evaluation tokens per expert.
#include <hdf5.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>

#include "config/config.hpp"
#include "data/corpus.hpp"
#include "io/checkpoint.hpp"
#include "io/run_file.hpp"
#include "layer_gradient_check.hpp"
#include "model/moe_layer.hpp"
#include "model/transformer.hpp"
#include "support.hpp"
#include "tiny_config.hpp"
#include "train/run_schema.hpp"
#include "train/trainer.hpp"

using namespace moe;
using namespace moe::test;

namespace {

Config tiny_moe_config(double capacity_factor) {
  Config c = tiny_config("topk", 4, 2);
  c.router.capacity_factor = capacity_factor;
  c.router.aux_loss_weight = 0.05;  // large enough that its gradient matters in the check
  c.router.z_loss_weight = 0.01;
  return c;
}

}  // namespace

// Gradients of sum(out * r) + weighted aux losses through the whole layer, in double.
static void check_layer_gradients(const Config& cfg, std::uint64_t seed, bool expect_drops) {
  MoeLayer<double> layer(cfg, RouterSetup{});
  const int N = 6;
  std::vector<int> ids(N, 0);
  auto tokens = to_device(ids);
  LayerCheckOptions opt;
  opt.after_forward = [&] {
    if (expect_drops) {
      ASSERT_GT(layer.plan().dropped, 0) << "the case must exercise the capacity cut";
    }
  };
  expect_layer_gradients_match(layer, {tokens, 0, true}, N, 8, 6, 4, seed, opt);
}

TEST(MoeLayer, BackwardMatchesFiniteDifferencesWithDroppedTokens) {
  check_layer_gradients(tiny_moe_config(/*capacity_factor=*/0.75), 11, /*expect_drops=*/true);
}

TEST(MoeLayer, BackwardMatchesFiniteDifferencesWithRouterJitter) {
  Config cfg = tiny_moe_config(0.0);
  cfg.router.jitter_noise = 0.2;  // fixed within a step, so finite differences apply
  check_layer_gradients(cfg, 13, /*expect_drops=*/false);
}

TEST(MoeLayer, DroppedCopiesContributeNothing) {
  // With capacity 1 per expert, only the first copy routed to each expert is processed.
  Config cfg = tiny_moe_config(0.0);
  cfg.model.top_k = 1;
  cfg.router.capacity_factor = 0.25;  // ceil(6*1/4*0.25) = 1
  const int N = 6, C = 8, E = 4;
  LayerInputs t(N, C, 6, E, 5);
  MoeLayer<double> layer(cfg, RouterSetup{});
  std::vector<int> ids(N, 0);
  auto tokens = to_device(ids);
  auto x = to_device(t.x), rw = to_device(t.rw), w1 = to_device(t.w1), b1 = to_device(t.b1),
       w2 = to_device(t.w2), b2 = to_device(t.b2);
  Buffer<double> out("out", N * C);
  layer.forward({tokens, 0, true}, x, {rw, w1, b1, w2, b2}, out, N);
  auto expert = to_host(layer.routing().expert_of);
  auto slot = to_host(layer.plan().slot_of);
  auto o = to_host(out);
  std::vector<int> seen(E, 0);
  int zero_rows = 0;
  for (int n = 0; n < N; ++n) {
    const bool kept = seen[expert[n]]++ == 0;
    EXPECT_EQ(slot[n] >= 0, kept) << "token " << n;
    double s = 0;
    for (int c = 0; c < C; ++c) s += std::abs(o[n * C + c]);
    if (!kept) {
      EXPECT_EQ(s, 0.0) << "a dropped token must leave the layer output at zero";
      ++zero_rows;
    }
  }
  EXPECT_GT(zero_rows, 0);
}

TEST(Transformer, WholeModelGradientMatchesFiniteDifferences) {
  Config cfg = tiny_moe_config(/*capacity_factor=*/1.0);
  cfg.model.moe_every = 2;  // block 0 dense, block 1 MoE: both paths in one check
  const int B = 2, N = B * cfg.model.seq_len;
  Transformer<double> model(cfg, B);
  model.init_parameters(7);
  // Larger-than-default weights so every path carries a visible signal.
  auto params = to_host(model.params());
  for (auto& v : params) v *= 5.0;
  std::vector<int> tok(N), tgt(N);
  for (int i = 0; i < N; ++i) {
    tok[i] = (3 * i + 1) % cfg.model.vocab_size;
    tgt[i] = (5 * i + 2) % cfg.model.vocab_size;
  }
  auto dtok = to_device(tok), dtgt = to_device(tgt);
  auto loss = [&]() {
    Kokkos::deep_copy(model.params(),
                      Kokkos::View<double*, Kokkos::HostSpace>(params.data(), params.size()));
    auto s = model.forward(dtok, dtgt, true, 0);
    return s.loss + s.aux.weighted;
  };
  loss();
  model.zero_grad();
  model.backward();
  auto analytic = to_host(model.grads());
  // Check a spread of parameters (every 7th) in every tensor to keep the test quick.
  std::vector<double> a, n;
  for (std::size_t i = 0; i < params.size(); i += 7) {
    const double keep = params[i];
    auto single = [&]() { return loss(); };
    params[i] = keep + 1e-5;
    const double up = single();
    params[i] = keep - 1e-5;
    const double down = single();
    params[i] = keep;
    a.push_back(analytic[i]);
    n.push_back((up - down) / 2e-5);
  }
  EXPECT_LT(rel_error(a, n), 1e-6);
}

TEST(Transformer, OneExpertTop1MoeEqualsDense) {
  Config cfg;
  cfg.model.vocab_size = 64;
  cfg.model.d_model = 16;
  cfg.model.n_heads = 2;
  cfg.model.d_ff = 32;
  cfg.model.seq_len = 8;
  cfg.model.num_experts = 1;
  cfg.model.top_k = 1;
  cfg.router.z_loss_weight = 0;  // the one-logit router's only non-zero gradient
  const int B = 3, N = B * cfg.model.seq_len;
  Transformer<double> dense(cfg, B), moe1(cfg, B, /*force_moe=*/true);
  ASSERT_EQ(dense.num_moe_layers(), 0);
  ASSERT_EQ(moe1.num_moe_layers(), cfg.model.n_layers);
  dense.init_parameters(3);
  moe1.init_parameters(3);
  std::vector<int> tok(N), tgt(N);
  for (int i = 0; i < N; ++i) tok[i] = (7 * i) % 64, tgt[i] = (11 * i + 3) % 64;
  auto dtok = to_device(tok), dtgt = to_device(tgt);
  const double ld = dense.forward(dtok, dtgt, true, 0).loss;
  const double lm = moe1.forward(dtok, dtgt, true, 0).loss;
  EXPECT_EQ(ld, lm);
  dense.zero_grad();
  moe1.zero_grad();
  dense.backward();
  moe1.backward();
  // Every dense tensor has a same-named twin in the MoE model with the same gradient.
  auto gd = to_host(dense.grads()), gm = to_host(moe1.grads());
  for (const auto& td : dense.layout().tensors) {
    const TensorInfo* tm = nullptr;
    for (const auto& t : moe1.layout().tensors)
      if (t.name == td.name) tm = &t;
    ASSERT_NE(tm, nullptr) << td.name;
    for (Index i = 0; i < td.size; ++i)
      ASSERT_NEAR(gd[td.offset + i], gm[tm->offset + i], 1e-14) << td.name << "[" << i << "]";
  }
}

TEST(Training, SameSeedSameLossSequenceBitForBit) {
  const Config cfg = small_training_config(6);
  const Corpus corpus = load_corpus(cfg);
  std::vector<double> a, b;
  for (auto* out : {&a, &b}) {
    Trainer t(cfg, corpus, nullptr, nullptr);
    for (int s = 0; s < cfg.train.steps; ++s) out->push_back(t.step(s));
  }
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i], b[i]) << "step " << i;
  EXPECT_LT(a.back(), a.front());
}

namespace {

// A 2-D int64 dataset of a closed HDF5 file, row-major, and its shape.
std::vector<std::int64_t> read_int64_rows(const std::string& path, const std::string& name,
                                          hsize_t dims[2]) {
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t d = H5Dopen2(f, name.c_str(), H5P_DEFAULT);
  const hid_t space = H5Dget_space(d);
  dims[0] = dims[1] = 0;
  const int rank = H5Sget_simple_extent_ndims(space);
  if (rank == 2) H5Sget_simple_extent_dims(space, dims, nullptr);
  std::vector<std::int64_t> v(dims[0] * dims[1]);
  if (!v.empty()) H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
  H5Sclose(space);
  H5Dclose(d);
  H5Fclose(f);
  return v;
}

}  // namespace

TEST(Training, FinalStepIsCheckpointedAndEvaluationCountsTokensPerExpert) {
  Config cfg = tiny_config("topk", 4, 2);
  cfg.model.n_layers = 2;
  cfg.model.moe_every = 2;  // block 1 is the MoE layer: names carry the block index
  cfg.train.batch_size = 2;
  cfg.train.steps = 5;
  cfg.train.eval_every = 2;  // evaluations after steps 2, 4 and the last (5)
  cfg.train.eval_batches = 3;
  cfg.output.checkpoint_every = 0;  // no periodic checkpoints: only the final one
  cfg.data.train_tokens = 4000;
  cfg.data.val_tokens = 1000;
  const Corpus corpus = load_corpus(cfg);
  const std::string path = "/tmp/moe_test_" + std::to_string(getpid()) + "_final.h5";
  std::vector<float> trained;
  {
    RunFile run(path);
    Trainer t(cfg, corpus, &run, nullptr);
    const TrainSummary s = t.train();
    ASSERT_TRUE(s.finished);
    trained = to_host(t.model().params());
  }
  const Checkpoint ck = read_checkpoint(checkpoint_path(path));
  EXPECT_EQ(ck.next_step, 5);
  ASSERT_EQ(ck.params.size(), trained.size());
  for (std::size_t i = 0; i < trained.size(); ++i) ASSERT_EQ(ck.params[i], trained[i]) << i;

  // Every validation token takes top_k = 2 experts (no capacity: nothing is cut before counting).
  const int nb = num_eval_batches(corpus.val, cfg);
  ASSERT_EQ(nb, 3);
  const std::int64_t assignments = std::int64_t(nb) * cfg.train.batch_size * cfg.model.seq_len * 2;
  hsize_t dims[2];
  const auto rows = read_int64_rows(path, schema::eval_tokens_per_expert(1), dims);
  ASSERT_EQ(dims[0], 3u);  // one row per evaluation
  ASSERT_EQ(dims[1], 4u);  // one column per expert
  for (hsize_t r = 0; r < dims[0]; ++r) {
    std::int64_t total = 0;
    for (hsize_t e = 0; e < dims[1]; ++e) total += rows[r * dims[1] + e];
    EXPECT_EQ(total, assignments) << "evaluation " << r;
  }
  std::remove(checkpoint_path(path).c_str());
  std::remove(path.c_str());
}

// The router owns its jitter: a training forward scores x * U(1 - eps, 1 + eps), a function of
// the step; evaluation scores x itself.
TEST(Router, JittersItsInputInTrainingOnly) {
  Config cfg = tiny_config("topk", 2, 1);
  cfg.router.jitter_noise = 0.2;
  const int N = 3, C = 8, E = 2;
  auto router = make_router<double>(cfg, RouterSetup{});
  // Weights [C,E]: expert 0 sums the input row, expert 1 sees nothing. With x = 1 the logit of
  // expert 0 is the sum of C noise factors.
  std::vector<double> w(C * E, 0.0);
  for (int c = 0; c < C; ++c) w[c * E] = 1.0;
  auto x = to_device(std::vector<double>(N * C, 1.0));
  auto wd = to_device(w);
  Buffer<double> logits("logits", N * E);
  auto score = [&](bool training, std::int64_t step) {
    router->score(RouteContext{View1<const int>(), step, training}, x, wd, logits, N, C);
    const auto h = to_host(logits);
    std::vector<double> out;
    for (int n = 0; n < N; ++n) out.push_back(h[n * E]);
    return out;
  };
  for (double v : score(false, 3)) EXPECT_EQ(v, double(C));
  const auto a = score(true, 3), b = score(true, 3), c = score(true, 4);
  EXPECT_EQ(a, b);  // the same step draws the same noise
  EXPECT_NE(a, c);  // another step draws other noise
  for (double v : a) {
    EXPECT_GE(v, C * 0.8);
    EXPECT_LE(v, C * 1.2);
    EXPECT_NE(v, double(C));
  }
  EXPECT_NE(a[0], a[1]);  // one draw per element, not per batch
}

// The dispatcher is chosen once, from the ranks: every expert local without expert parallelism.
TEST(TokenDispatcher, OneRankIsLocal) {
  const Comm solo;
  EXPECT_NE(dynamic_cast<LocalDispatcher<float>*>(make_dispatcher<float>(4, 8, nullptr).get()),
            nullptr);
  EXPECT_NE(dynamic_cast<LocalDispatcher<float>*>(make_dispatcher<float>(4, 8, &solo).get()),
            nullptr);
}

// LocalDispatcher + identity experts: each token gets back x times the sum of its kept gates.
TEST(TokenDispatcher, LocalRoundTripWeighsRowsByTheirGates) {
  Config cfg = tiny_config("topk", 4, 2);
  const int N = 5, C = 8, E = 4;
  auto router = make_router<double>(cfg, RouterSetup{});
  RoutingState<double> st;
  st.probs = Buffer<double>("probs", N * E);
  st.expert_of = Buffer<int>("expert_of", N * 2);
  st.gate = Buffer<double>("gate", N * 2);
  st.counts = Buffer<int>("counts", E);
  auto logits = to_device(random_vector(N * E, 5));
  router->forward(RouteContext{View1<const int>(), 0, true}, logits, st, N);
  const auto xh = random_vector(N * C, 6);
  auto x = to_device(xh);
  LocalDispatcher<double> d(E, C, nullptr);
  auto rows = d.dispatch(*router, st, x, N);
  ASSERT_EQ(d.expert_rows().rows(), N * 2);  // dropless: every copy kept
  Kokkos::deep_copy(d.expert_output(), rows);
  Buffer<double> out("out", N * C);
  d.combine(st, out, N);
  const auto gate = to_host(st.gate), oh = to_host(out);
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c)
      EXPECT_NEAR(oh[n * C + c], xh[n * C + c] * (gate[2 * n] + gate[2 * n + 1]), 1e-15);
}
