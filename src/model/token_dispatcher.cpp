#include "model/token_dispatcher.hpp"

#include "combine.hpp"
#include "model/scratch.hpp"

namespace moe {

template <class Real>
bool TokenDispatcher<Real>::make_plan(const Router<Real>& router, const RoutingState<Real>& st,
                                      int N, View1<const Real> x, View1<Real> xg) {
  // With data parallelism the capacity is per expert over the global batch, cut by position in
  // the global token order (rank 0's tokens first): a copy is kept iff the copies of its expert
  // on earlier ranks plus its rank here are below the capacity, exactly as on one rank.
  const Index NK = Index(N) * K_;
  const bool dp = comm_ && comm_->distributed();
  const int capacity = router.capacity(dp ? Index(N) * comm_->size() : Index(N));
  View1<const Real> priority = router.drop_priority(st);
  if (priority.extent(0) > 0) {
    MOE_CHECK(!dp, "drop by probability is refused with several ranks before training");
    dispatch_plan<Real>(st.expert_of, priority, NK, E_, capacity, plan_);
    return false;
  }
  // Slot-major ranking (GShard, router.drop_order = "slot"): the global order is slot 0 of
  // every rank, then slot 1 of every rank, ...; rank_offset[j*E + e] is where this rank's
  // slot-j copies of e start in it.
  const int slots = router.capacity_slot_major() ? K_ : 1;
  View1<const int> offsets;
  if (dp && capacity > 0) {
    const int SE = slots * E_;
    auto off = ensure(rank_offset_, SE, "moe::moe.rank_offset");
    slot_expert_counts(st.expert_of, NK, E_, slots, off);
    std::vector<std::int64_t> mine(SE), before(SE);
    auto h = Kokkos::create_mirror_view(Kokkos::subview(off, std::make_pair(0, SE)));
    Kokkos::deep_copy(h, Kokkos::subview(off, std::make_pair(0, SE)));
    for (int i = 0; i < SE; ++i) mine[i] = h(i);
    comm_->exscan(mine.data(), before.data(), SE);
    std::vector<std::int64_t> total = mine;
    if (slots > 1) comm_->sum(total.data(), SE);
    for (int e = 0; e < E_; ++e) {
      std::int64_t lower_slots = 0;  // copies of e in lower slots, over every rank
      for (int j = 0; j < slots; ++j) {
        h(j * E_ + e) = int(lower_slots + before[j * E_ + e]);
        lower_slots += total[j * E_ + e];
      }
    }
    Kokkos::deep_copy(Kokkos::subview(off, std::make_pair(0, SE)), h);
    offsets = off;
  }
  dispatch_plan_gather<Real>(st.expert_of, NK, E_, capacity, plan_, offsets, slots, x, xg, K_, C_);
  return true;
}

template <class Real>
View1<const Real> TokenDispatcher<Real>::group(const Router<Real>& router,
                                               const RoutingState<Real>& st, View1<const Real> x,
                                               int N) {
  K_ = router.slots_per_token();
  // Sized for every copy kept: the kept count is known only once the plan is made.
  auto xg = ensure(xg_, Index(N) * K_ * C_, "moe::moe.xg");
  if (!make_plan(router, st, N, x, xg)) dispatch_forward<Real>(x, plan_, xg, K_, C_);
  ensure(yg_, kept() * C_, "moe::moe.yg");
  return slice(xg_, 0, kept() * C_);
}

template <class Real>
void TokenDispatcher<Real>::ungroup(const RoutingState<Real>& st, View1<const Real> yg,
                                    View1<Real> out, int N) {
  combine_forward<Real>(exec_, matrix(yg, kept(), C_), matrix(plan_.slot_of, N, K_),
                        matrix(st.gate, N, K_), matrix(out, N, C_));
  lap(timer_, Phase::Combine);
}

template <class Real>
View1<Real> TokenDispatcher<Real>::ungroup_backward(const RoutingState<Real>& st,
                                                    View1<const Real> dout, View1<Real> dgate,
                                                    int N) {
  const Index MC = kept() * C_;
  // Neither needs zeroing: combine_backward writes every kept row of dyg, the experts' backward
  // every row of dxg.
  auto dyg = ensure(dyg_, MC, "moe::moe.dyg");
  ensure(dxg_, MC, "moe::moe.dxg");
  moe::combine_backward<Real>(exec_, matrix(dout, N, C_), matrix(yg_, kept(), C_),
                              matrix(plan_.slot_of, N, K_), matrix(st.gate, N, K_),
                              matrix(dyg, kept(), C_), matrix(dgate, N, K_));
  lap(timer_, Phase::Combine);
  return dyg;
}

template <class Real>
void TokenDispatcher<Real>::group_backward(View1<Real> dx, int N) {
  moe::dispatch_backward<Real>(slice(dxg_, 0, kept() * C_), plan_, dx, N, K_, C_);
  lap(timer_, Phase::Dispatch);
}

template <class Real>
View1<const Real> LocalDispatcher<Real>::dispatch(const Router<Real>& router,
                                                  const RoutingState<Real>& st, View1<const Real> x,
                                                  int N) {
  auto xg = this->group(router, st, x, N);
  lap(this->timer_, Phase::Dispatch);
  return xg;
}

template <class Real>
ExpertRows LocalDispatcher<Real>::expert_rows() const {
  return {0, this->E_, &this->plan_.host_offsets};
}

template <class Real>
View1<Real> LocalDispatcher<Real>::expert_output() {
  return slice(this->yg_, 0, this->kept() * this->C_);
}

template <class Real>
void LocalDispatcher<Real>::combine(const RoutingState<Real>& st, View1<Real> out, int N) {
  this->ungroup(st, expert_output(), out, N);
}

template <class Real>
View1<const Real> LocalDispatcher<Real>::combine_backward(const RoutingState<Real>& st,
                                                          View1<const Real> dout, View1<Real> dgate,
                                                          int N) {
  return this->ungroup_backward(st, dout, dgate, N);
}

template <class Real>
View1<Real> LocalDispatcher<Real>::expert_input_grad() {
  return slice(this->dxg_, 0, this->kept() * this->C_);
}

template <class Real>
void LocalDispatcher<Real>::dispatch_backward(View1<Real> dx, int N) {
  this->group_backward(dx, N);
}

template <class Real>
std::unique_ptr<TokenDispatcher<Real>> make_dispatcher(int E, int C, const Comm* comm) {
  if (comm && comm->ep_size() > 1)
    return std::make_unique<ExpertParallelDispatcher<Real>>(E, C, *comm);
  return std::make_unique<LocalDispatcher<Real>>(E, C, comm);
}

template class TokenDispatcher<float>;
template class TokenDispatcher<double>;
template class LocalDispatcher<float>;
template class LocalDispatcher<double>;
template std::unique_ptr<TokenDispatcher<float>> make_dispatcher<float>(int, int, const Comm*);
template std::unique_ptr<TokenDispatcher<double>> make_dispatcher<double>(int, int, const Comm*);

}  // namespace moe
