// The token dispatcher of an MoE layer: between the router's decision and the experts, and back.
// dispatch() cuts the decision to the expert capacity (over the global batch), groups the kept
// token copies by expert and moves them to the rank of their expert; combine() brings the
// experts' outputs back and sums them, gate-weighted, at their tokens. The backward pass runs the
// same moves in reverse. Which dispatcher a layer has is chosen once, when it is built:
// LocalDispatcher (every expert on this rank) or ExpertParallelDispatcher (experts spread over
// the expert-parallel group, rows exchanged over MPI, or NCCL in NCCL builds).
// Each dispatcher laps the phases it works in (Dispatch, Combine) on the layer's timer.
#pragma once

#include <memory>

#include "common.hpp"
#include "dispatch.hpp"
#include "model/experts.hpp"
#include "model/phase_timer.hpp"
#include "parallel/comm.hpp"
#include "parallel/expert_exchange.hpp"
#include "routing/strategy.hpp"

namespace moe {

template <class Real>
class TokenDispatcher {
 public:
  // E experts of width C; comm: the run's ranks (null: one rank).
  TokenDispatcher(int E, int C, const Comm* comm) : E_(E), C_(C), comm_(comm) {}
  virtual ~TokenDispatcher() = default;
  TokenDispatcher(const TokenDispatcher&) = delete;
  TokenDispatcher& operator=(const TokenDispatcher&) = delete;

  // Forward. The kept copies of x's rows [N,C] at their experts: returns the experts' input
  // rows [expert_rows().rows(), C].
  virtual View1<const Real> dispatch(const Router<Real>& router, const RoutingState<Real>& st,
                                     View1<const Real> x, int N) = 0;
  // The experts' rows on this rank (valid after dispatch()).
  virtual ExpertRows expert_rows() const = 0;
  // Where the experts write their output rows [expert_rows().rows(), C].
  virtual View1<Real> expert_output() = 0;
  // out [N,C] = sum over each token's kept copies of gate * expert output.
  virtual void combine(const RoutingState<Real>& st, View1<Real> out, int N) = 0;

  // Backward of combine, given dout [N,C]: dgate += its gradient; returns the gradient of the
  // experts' output rows, at the experts.
  virtual View1<const Real> combine_backward(const RoutingState<Real>& st, View1<const Real> dout,
                                             View1<Real> dgate, int N) = 0;
  // Where the experts write the gradient of their input rows (every row: no zeroing needed).
  virtual View1<Real> expert_input_grad() = 0;
  // Backward of dispatch: dx [N,C] += the experts' input-row gradients at their tokens.
  virtual void dispatch_backward(View1<Real> dx, int N) = 0;

  const DispatchPlan& plan() const { return plan_; }
  void set_timer(PhaseTimer* t) { timer_ = t; }

 protected:
  // The plan for the router's decision in `st`, with the capacity cut by position in the global
  // batch; then x's kept copies grouped by expert into the rows returned ([plan_.total_kept, C]).
  View1<const Real> group(const Router<Real>& router, const RoutingState<Real>& st,
                          View1<const Real> x, int N);
  // out = combine of the grouped rows yg [total_kept, C] (the experts' outputs, back here).
  void ungroup(const RoutingState<Real>& st, View1<const Real> yg, View1<Real> out, int N);
  // Backward of ungroup: returns d(yg) [total_kept, C], zeroes d(xg), dgate += .
  View1<Real> ungroup_backward(const RoutingState<Real>& st, View1<const Real> dout,
                               View1<Real> dgate, int N);
  // Backward of group: dx = d(xg) summed back to the tokens (written: a token with no kept copy
  // gets 0).
  void group_backward(View1<Real> dx, int N);

  int slots() const { return K_; }
  Index kept() const { return plan_.total_kept; }

  ExecSpace exec_;  // where the dispatch and combine kernels run
  int E_, C_, K_ = 1;
  const Comm* comm_;
  PhaseTimer* timer_ = nullptr;
  DispatchPlan plan_;
  Buffer<Real> xg_, yg_, dyg_, dxg_;  // rows grouped by expert on this rank [total_kept, C]

 private:
  // The plan, with x's kept copies gathered into xg [N*K, C] on the way where the plan allows it
  // (drop by position); returns whether they were.
  bool make_plan(const Router<Real>& router, const RoutingState<Real>& st, int N,
                 View1<const Real> x, View1<Real> xg);
  Buffer<int> rank_offset_;  // [slots*E] where this rank's copies start in the global order
};

// Every expert on this rank: the grouped rows are the experts' rows.
template <class Real>
class LocalDispatcher : public TokenDispatcher<Real> {
 public:
  LocalDispatcher(int E, int C, const Comm* comm) : TokenDispatcher<Real>(E, C, comm) {}
  View1<const Real> dispatch(const Router<Real>& router, const RoutingState<Real>& st,
                             View1<const Real> x, int N) override;
  ExpertRows expert_rows() const override;
  View1<Real> expert_output() override;
  void combine(const RoutingState<Real>& st, View1<Real> out, int N) override;
  View1<const Real> combine_backward(const RoutingState<Real>& st, View1<const Real> dout,
                                     View1<Real> dgate, int N) override;
  View1<Real> expert_input_grad() override;
  void dispatch_backward(View1<Real> dx, int N) override;
};

// Experts spread over the expert-parallel group (comm->ep()): the grouped rows travel to their
// expert's owner (ExpertExchange), run there, and come back.
template <class Real>
class ExpertParallelDispatcher : public TokenDispatcher<Real> {
 public:
  ExpertParallelDispatcher(int E, int C, const Comm& comm) : TokenDispatcher<Real>(E, C, &comm) {}
  View1<const Real> dispatch(const Router<Real>& router, const RoutingState<Real>& st,
                             View1<const Real> x, int N) override;
  ExpertRows expert_rows() const override;
  View1<Real> expert_output() override;
  void combine(const RoutingState<Real>& st, View1<Real> out, int N) override;
  View1<const Real> combine_backward(const RoutingState<Real>& st, View1<const Real> dout,
                                     View1<Real> dgate, int N) override;
  View1<Real> expert_input_grad() override;
  void dispatch_backward(View1<Real> dx, int N) override;

 private:
  Index received() const { return exchange_.received(); }
  ExpertExchange<Real> exchange_;
  Buffer<Real> xe_, ye_, dye_, dxe_;  // rows at the experts [received, C]
};

// ExpertParallelDispatcher when comm spreads the experts over several ranks, else
// LocalDispatcher.
template <class Real>
std::unique_ptr<TokenDispatcher<Real>> make_dispatcher(int E, int C, const Comm* comm);

}  // namespace moe
