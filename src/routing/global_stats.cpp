#include "routing/global_stats.hpp"

#include <vector>

#include "router.hpp"

namespace moe {

template <class Real>
void GlobalRouterStats<Real>::set_tokens(int N) {
  const double global = comm_ ? comm_->sum(double(N)) : double(N);
  share_ = Real(double(N) / global);
}

template <class Real>
double GlobalRouterStats<Real>::balance_loss(View1<const Real> probs, View1<const int> expert_of,
                                             View1<int> local_counts, int N, int E, Index A,
                                             int stride, View1<int> all_counts,
                                             View1<const Real> lse2, double* z_local) {
  set_tokens(N);
  const bool distributed = comm_ && comm_->distributed();
  if (Index(global_counts_.extent(0)) < E)
    global_counts_ = Buffer<int>(std::string("moe::router.global_counts"), std::size_t(E));
  if (distributed && Index(col_sums_.extent(0)) < E)
    col_sums_ = Buffer<double>(std::string("moe::router.prob_sums"), std::size_t(E));
  const View1<double> sums = distributed ? slice(col_sums_, 0, E) : View1<double>();
  const BalanceAndZ<Real> stats = balance_stats_forward<Real>(
      probs, expert_of, local_counts, all_counts, sums, N, E, A, stride, lse2);
  if (z_local) *z_local = double(stats.z);
  const double local = double(stats.balance);
  if (!distributed) {
    backward_counts_ = View1<const int>(local_counts.data(), std::size_t(E));
    return local;
  }
  backward_counts_ = View1<const int>(global_counts_.data(), std::size_t(E));
  // Global f_e (assignment counts) and P_e (probability sums), reduced in a fixed order.
  std::vector<std::int64_t> counts(E);
  std::vector<double> psum(E);
  {
    auto hc = Kokkos::create_mirror_view(Kokkos::subview(local_counts, std::make_pair(0, E)));
    Kokkos::deep_copy(hc, Kokkos::subview(local_counts, std::make_pair(0, E)));
    for (int e = 0; e < E; ++e) counts[e] = hc(e);
    auto hs = Kokkos::create_mirror_view(sums);
    Kokkos::deep_copy(hs, sums);
    for (int e = 0; e < E; ++e) psum[e] = hs(e);
  }
  comm_->sum(counts.data(), E);
  comm_->sum(psum.data(), E);
  const double tokens = double(N) / double(share_);
  double assigned = 0, loss = 0;
  for (int e = 0; e < E; ++e) assigned += double(counts[e]);
  for (int e = 0; e < E; ++e)
    if (assigned > 0) loss += double(counts[e]) / assigned * psum[e] / tokens;
  auto hg = Kokkos::create_mirror_view(global_counts_);
  for (int e = 0; e < E; ++e) hg(e) = int(counts[e]);
  Kokkos::deep_copy(global_counts_, hg);
  return double(E) * loss;
}

template <class Real>
double GlobalRouterStats<Real>::zloss(View1<const Real> logits, int N, int E) {
  set_tokens(N);
  const double local = double(router_zloss_forward<Real>(logits, N, E));
  if (!comm_ || !comm_->distributed()) return local;
  return comm_->sum(local * double(share_));
}

template <class Real>
double GlobalRouterStats<Real>::zloss_from_local(double local_mean, int N) {
  set_tokens(N);
  if (!comm_ || !comm_->distributed()) return local_mean;
  return comm_->sum(local_mean * double(share_));
}

template <class Real>
void GlobalRouterStats<Real>::zloss_backward(View1<const Real> logits, Real weight,
                                             View1<Real> dlogits, int N, int E) const {
  router_zloss_backward<Real>(logits, weight * share_, dlogits, N, E);
}

template class GlobalRouterStats<float>;
template class GlobalRouterStats<double>;

}  // namespace moe
