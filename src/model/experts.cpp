#include "model/experts.hpp"

#include "mlp.hpp"
#include "model/scratch.hpp"

namespace moe {
namespace {

template <class Real>
MlpWeights<Real> weights(const FfnTensors<Real>& t) {
  return {t.w1, t.b1, t.w2, t.b2};
}

}  // namespace

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
  mlp_forward<Real>(exec_, matrix(x, R, C_), weights(mine),
                    {matrix(pre, R, F_), matrix(act, R, F_)}, matrix(y, R, C_), *rows.offsets);
  x_ = x;
}

template <class Real>
void GroupedExperts<Real>::backward(const FfnTensors<Real>& p, const FfnTensors<Real>& g,
                                    const ExpertRows& rows, View1<const Real> dy, View1<Real> dx) {
  const Index R = rows.rows();
  auto dpre = ensure(dpre_, R * F_, "moe::experts.dpre");
  const FfnTensors<Real> mine = local(p, rows), mine_g = local(g, rows);
  mlp_backward<Real>(exec_, matrix(dy, R, C_), matrix(x_, R, C_),
                     {matrix(pre_, R, F_), matrix(act_, R, F_)}, weights(mine), matrix(dpre, R, F_),
                     matrix(dx, R, C_), weights(mine_g), *rows.offsets, DxMode::Overwrite);
}

template class GroupedExperts<float>;
template class GroupedExperts<double>;

}  // namespace moe
