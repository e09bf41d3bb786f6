// router.type -> strategy, with the run's router jitter. The config layer has already refused
// unknown types.
#include "routing/expert_choice_router.hpp"
#include "routing/hash_router.hpp"
#include "routing/maskmoe_router.hpp"
#include "routing/moec_router.hpp"
#include "routing/strategy.hpp"
#include "routing/topk_router.hpp"

namespace moe {

namespace {

template <class Real>
std::unique_ptr<Router<Real>> make_strategy(const Config& cfg, const RouterSetup& setup) {
  const std::string& type = cfg.router.type;
  if (type == "topk") return std::make_unique<TopKRouter<Real>>(cfg, setup);
  if (type == "hash") return std::make_unique<HashRouter<Real>>(cfg, setup);
  if (type == "maskmoe") return std::make_unique<MaskMoERouter<Real>>(cfg, setup);
  if (type == "moec") return std::make_unique<MoECRouter<Real>>(cfg, setup);
  if (type == "expert_choice") return std::make_unique<ExpertChoiceRouter<Real>>(cfg, setup);
  MOE_CHECK(false, "router.type passed validation but has no strategy");
  return nullptr;
}

}  // namespace

template <class Real>
std::unique_ptr<Router<Real>> make_router(const Config& cfg, const RouterSetup& setup) {
  auto router = make_strategy<Real>(cfg, setup);
  router->set_jitter(cfg.router.jitter_noise, cfg.train.seed, setup.layer);
  return router;
}

template std::unique_ptr<Router<float>> make_router<float>(const Config&, const RouterSetup&);
template std::unique_ptr<Router<double>> make_router<double>(const Config&, const RouterSetup&);

}  // namespace moe
