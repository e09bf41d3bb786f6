// Checks across keys: router parameters that need each other, divisibility, split sizes.
#include <cstdint>
#include <string>

#include "config/config_schema.hpp"
#include "routing/expert_dropout_rule.hpp"
#include "util/format_double.hpp"

namespace moe::config_detail {

namespace {

std::string tokens_rule(const Config& c) {
  return "(allowed: >= " + std::to_string(std::int64_t(c.model.seq_len) + 1) +
         " = model.seq_len + 1)";
}

// Router parameters that make no sense for the chosen router.type.
void check_router_keys(const Config& c) {
  const ModelConfig& m = c.model;
  const RouterConfig& r = c.router;
  const std::string E = std::to_string(m.num_experts);
  if (r.type == "hash" && m.top_k != 1)
    throw UserError("model.top_k = " + std::to_string(m.top_k) +
                    " with router.type = \"hash\" (allowed: 1; a hash table gives one expert)");
  if (r.type == "maskmoe" && (r.visible_experts < 1 || r.visible_experts > m.num_experts))
    throw UserError("router.visible_experts = " + std::to_string(r.visible_experts) +
                    " with router.type = \"maskmoe\" (allowed: 1..num_experts = " + E + ")");
  if (r.type == "maskmoe" && m.top_k > r.visible_experts)
    throw UserError("model.top_k = " + std::to_string(m.top_k) +
                    " exceeds router.visible_experts = " + std::to_string(r.visible_experts) +
                    " (allowed: 1..visible_experts)");
  if (r.type == "moec" && (r.cluster_size < 1 || m.num_experts % r.cluster_size != 0))
    throw UserError("router.cluster_size = " + std::to_string(r.cluster_size) +
                    " does not divide model.num_experts = " + E +
                    " (allowed: a divisor of num_experts, >= 1)");
  if (r.type == "moec" && r.cluster_loss == "intra" && r.cluster_size < 2 &&
      r.cluster_loss_weight > 0)
    throw UserError(
        "router.cluster_size = 1 leaves no within-cluster variance for "
        "router.cluster_loss = \"intra\" (allowed: >= 2, or cluster_loss_weight = 0)");
  if (r.type == "moec" && r.expert_dropout > 0 &&
      dropout_kept_count(r.expert_dropout, m.num_experts, r.cluster_size, m.top_k,
                         r.dropout_mode == "cluster") == m.num_experts)
    throw UserError("router.expert_dropout = " + shortest_double(r.expert_dropout) +
                    " drops no expert with dropout_mode = \"" + r.dropout_mode +
                    "\", num_experts = " + E + ", cluster_size = " +
                    std::to_string(r.cluster_size) + ", top_k = " + std::to_string(m.top_k) +
                    " (allowed: 0, or a setting that drops one; docs/routing.md lists them)");
  if (r.type == "expert_choice" && r.capacity_factor <= 0)
    throw UserError("router.capacity_factor = " + shortest_double(r.capacity_factor) +
                    " with router.type = \"expert_choice\" (allowed: > 0; each expert takes "
                    "tokens*capacity_factor/num_experts tokens)");
}

}  // namespace

void check_cross_keys(const Config& c) {
  const ModelConfig& m = c.model;
  if (m.top_k > m.num_experts)
    throw UserError("model.top_k = " + std::to_string(m.top_k) + " exceeds model.num_experts = " +
                    std::to_string(m.num_experts) + " (allowed: 1..num_experts)");
  if (m.d_model % m.n_heads != 0)
    throw UserError("model.n_heads = " + std::to_string(m.n_heads) +
                    " does not divide model.d_model = " + std::to_string(m.d_model) +
                    " (d_model must be a multiple of n_heads)");
  check_router_keys(c);
  const std::int64_t window = std::int64_t(m.seq_len) + 1;
  const DataConfig& d = c.data;
  if (d.train_tokens == 0 && d.source == "synthetic")
    throw UserError("data.train_tokens = 0 (all of the source) is impossible with data.source = " +
                    quote(d.source) + ", which has no end " + tokens_rule(c));
  if (d.path.empty() && (d.source == "text" || d.source == "tokens"))
    throw UserError("data.path is empty with data.source = " + quote(d.source) +
                    " (allowed: a file or a glob(3) pattern of files)");
  if (d.train_tokens != 0 && d.train_tokens < window)
    throw UserError("data.train_tokens = " + std::to_string(d.train_tokens) +
                    " is less than one sequence (allowed: 0 = all, or >= " +
                    std::to_string(window) + " = model.seq_len + 1)");
  for (const auto& [name, value] :
       {std::pair<const char*, std::int64_t>{"val_tokens", d.val_tokens},
        {"test_tokens", d.test_tokens}}) {
    if (value == 0 && d.source == "synthetic")
      throw UserError(std::string("data.") + name + " = 0 (all of the split) is impossible with " +
                      "data.source = \"synthetic\", which has no end " + tokens_rule(c));
    if (value != 0 && value < window)
      throw UserError(std::string("data.") + name + " = " + std::to_string(value) +
                      " is less than one sequence (allowed: 0 = all, or >= " +
                      std::to_string(window) + " = model.seq_len + 1)");
  }
}

}  // namespace moe::config_detail
