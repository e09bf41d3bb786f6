#include "model/experts.hpp"

#include "mlp.hpp"
#include "model/scratch.hpp"

namespace moe {

template <class Real>
FfnTensors<Real> GroupedExperts<Real>::local(const FfnTensors<Real>& t,
                                             const ExpertRows& rows) const {
  const Index first = rows.first, n = rows.count, CF = Index(C_) * F_;
  return {t.router_w, slice(t.w1, first * CF, n * CF), slice(t.b1, first * F_, n * F_),
          slice(t.w2, first * CF, n * CF), slice(t.b2, first * C_, n * C_)};
}

template <class Real>
void GroupedExperts<Real>::forward(const FfnTensors<Real>& p, const ExpertRows& rows,
                                   View1<const Real> x, View1<Real> y) {
  const Index R = rows.rows();
  auto pre = ensure(pre_, R * F_, "moe::experts.pre");
  auto act = ensure(act_, R * F_, "moe::experts.act");
  const FfnTensors<Real> mine = local(p, rows);
  mlp_forward<Real>(x, mine.w1, mine.b1, mine.w2, mine.b2, pre, act, y, *rows.offsets, C_, F_);
  x_ = x;
}

template <class Real>
void GroupedExperts<Real>::backward(const FfnTensors<Real>& p, const FfnTensors<Real>& g,
                                    const ExpertRows& rows, View1<const Real> dy, View1<Real> dx) {
  const Index R = rows.rows();
  auto dpre = ensure(dpre_, R * F_, "moe::experts.dpre");
  const FfnTensors<Real> mine = local(p, rows), mine_g = local(g, rows);
  mlp_backward<Real>(dy, x_, slice(pre_, 0, R * F_), slice(act_, 0, R * F_), mine.w1, mine.w2, dpre,
                     dx, mine_g.w1, mine_g.b1, mine_g.w2, mine_g.b2, *rows.offsets, C_, F_);
}

template class GroupedExperts<float>;
template class GroupedExperts<double>;

}  // namespace moe
