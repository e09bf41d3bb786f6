// ExpertParallelDispatcher: the grouped rows of this rank go to their experts' owners in the
// expert-parallel group and come back (parallel/expert_exchange.hpp: MPI point-to-point, or
// NCCL in NCCL builds). The exchange's time counts as Dispatch.
#include "model/scratch.hpp"
#include "model/token_dispatcher.hpp"

namespace moe {

template <class Real>
View1<const Real> ExpertParallelDispatcher<Real>::dispatch(const Router<Real>& router,
                                                           const RoutingState<Real>& st,
                                                           View1<const Real> x, int N) {
  auto xg = this->group(router, st, x, N);
  exchange_.plan(this->plan_.host_offsets, this->E_, *this->comm_);
  const Index RC = received() * this->C_;
  auto xe = ensure(xe_, RC, "moe::moe.xe");
  ensure(ye_, RC, "moe::moe.ye");
  exchange_.forward(xg, xe, this->C_);
  lap(this->timer_, Phase::Dispatch);
  return xe;
}

template <class Real>
ExpertRows ExpertParallelDispatcher<Real>::expert_rows() const {
  return {exchange_.first_expert(), exchange_.local_experts(), &exchange_.local_offsets()};
}

template <class Real>
View1<Real> ExpertParallelDispatcher<Real>::expert_output() {
  return slice(ye_, 0, received() * this->C_);
}

template <class Real>
void ExpertParallelDispatcher<Real>::combine(const RoutingState<Real>& st, View1<Real> out, int N) {
  auto yg = slice(this->yg_, 0, this->kept() * this->C_);
  exchange_.reverse(expert_output(), yg, this->C_);
  lap(this->timer_, Phase::Dispatch);
  this->ungroup(st, yg, out, N);
}

template <class Real>
View1<const Real> ExpertParallelDispatcher<Real>::combine_backward(const RoutingState<Real>& st,
                                                                   View1<const Real> dout,
                                                                   View1<Real> dgate, int N) {
  // Output gradients go to the owners.
  auto dyg = this->ungroup_backward(st, dout, dgate, N);
  const Index RC = received() * this->C_;
  auto dye = ensure(dye_, RC, "moe::moe.dye");
  ensure(dxe_, RC, "moe::moe.dxe");  // written whole by the experts' backward: no zeroing
  exchange_.forward(dyg, dye, this->C_);
  lap(this->timer_, Phase::Dispatch);
  return dye;
}

template <class Real>
View1<Real> ExpertParallelDispatcher<Real>::expert_input_grad() {
  return slice(dxe_, 0, received() * this->C_);
}

template <class Real>
void ExpertParallelDispatcher<Real>::dispatch_backward(View1<Real> dx, int N) {
  // Input gradients come back.
  exchange_.reverse(expert_input_grad(), slice(this->dxg_, 0, this->kept() * this->C_), this->C_);
  this->group_backward(dx, N);
}

template class ExpertParallelDispatcher<float>;
template class ExpertParallelDispatcher<double>;

}  // namespace moe
