// The names in a run file, spelled once: what training writes, what a resumed run and the study
// driver read back, and what docs/hdf5-schema.md describes. Per-MoE-layer names take the block
// index of the layer ("layer_<L>", L counting every block, dense ones included).
#pragma once

#include <string>

namespace moe::schema {

// Root attributes.
inline constexpr const char* kStatus = "/status";  // running | complete | failed
inline constexpr const char* kError = "/error";
inline constexpr const char* kResumeCount = "/resume_count";
inline constexpr const char* kCheckpointStep = "/checkpoint_step";
inline constexpr const char* kNumParams = "/num_params";
inline constexpr const char* kFinalLoss = "/final_loss";
inline constexpr const char* kFinalValLoss = "/final_val_loss";
inline constexpr const char* kConfig = "/config";  // dataset: the config text

// One row per training step.
inline constexpr const char* kTrainStep = "/train/step";
inline constexpr const char* kTrainLoss = "/train/loss";
inline constexpr const char* kTrainAuxLoss = "/train/aux_loss";
inline constexpr const char* kTrainBalanceLoss = "/train/balance_loss";
inline constexpr const char* kTrainZLoss = "/train/z_loss";
inline constexpr const char* kTrainClusterLoss = "/train/cluster_loss";
inline constexpr const char* kTrainLr = "/train/lr";
inline constexpr const char* kTrainGradNorm = "/train/grad_norm";
// 1 when clipping scaled the step's gradients down (grad_clip > 0 and grad_norm > grad_clip).
inline constexpr const char* kTrainClipped = "/train/clipped";
inline constexpr const char* kTrainTokensPerS = "/train/tokens_per_s";
inline std::string train_time(const char* phase) {
  return std::string("/train/time/") + phase;
}

// One row per evaluation.
inline constexpr const char* kEvalStep = "/eval/step";
inline constexpr const char* kEvalValLoss = "/eval/val_loss";
inline constexpr const char* kEvalValPpl = "/eval/val_ppl";
// Validation tokens each evaluation scored (eval_windows * seq_len; data/corpus.hpp).
inline constexpr const char* kEvalTokens = "/eval/tokens";
inline constexpr const char* kEvalBucketPpl = "/eval/bucket_ppl";
inline constexpr const char* kEvalPplFrequent = "/eval/ppl_frequent";
inline constexpr const char* kEvalPplInfrequent = "/eval/ppl_infrequent";
// Share of the evaluated validation tokens in the infrequent class.
inline constexpr const char* kEvalInfrequentValShare = "/eval/infrequent_val_share";
// Written once: the frequency buckets' edges and sizes, and the frequent/infrequent split.
inline constexpr const char* kEvalBucketMinCount = "/eval/bucket_min_count";
inline constexpr const char* kEvalBucketTypes = "/eval/bucket_types";
inline constexpr const char* kEvalFrequencySplit = "/eval/frequency_split";  // attribute
// Attributes: what the infrequent class covers (share of the training tokens, types).
inline constexpr const char* kEvalInfrequentTrainMass = "/eval/infrequent_train_mass";
inline constexpr const char* kEvalInfrequentTypes = "/eval/infrequent_types";

// One row, at the final step: the held-out test split (chosen models are reported on it).
inline constexpr const char* kTestStep = "/test/step";
inline constexpr const char* kTestLoss = "/test/loss";
inline constexpr const char* kTestPpl = "/test/ppl";
inline constexpr const char* kTestTokens = "/test/tokens";  // test tokens scored

// Root attributes: how the data was split and each split's size in tokens (after the caps).
inline constexpr const char* kDataSplit = "/data_split";
inline constexpr const char* kDataTrainTokens = "/data_train_tokens";
inline constexpr const char* kDataValTokens = "/data_val_tokens";
inline constexpr const char* kDataTestTokens = "/data_test_tokens";

inline std::string layer_name(int block) {
  return "layer_" + std::to_string(block);
}
inline std::string eval_fluctuation(int block) {
  return "/eval/fluctuation/" + layer_name(block);
}
inline std::string eval_tokens_per_expert(int block) {
  return "/eval/tokens_per_expert/" + layer_name(block);
}

// One row per training step, per MoE layer.
inline std::string routing(int block, const char* what) {
  return "/routing/" + layer_name(block) + "/" + what;
}
inline constexpr const char* kTokensPerExpert = "tokens_per_expert";
inline constexpr const char* kDropped = "dropped";
inline constexpr const char* kMaxOverMeanLoad = "max_over_mean_load";
inline constexpr const char* kRouterEntropy = "router_entropy";

// Routing traces: group "/trace/train" (every output.trace_every steps) or "/trace/eval".
inline constexpr const char* kTraceTrain = "/trace/train";
inline constexpr const char* kTraceEval = "/trace/eval";
inline std::string trace_step(const std::string& group) {
  return group + "/step";
}
inline std::string trace_tokens(const std::string& group) {
  return group + "/tokens";
}
inline std::string trace_layer(const std::string& group, int block, const char* what) {
  return group + "/" + layer_name(block) + "/" + what;  // what: "experts" | "gates"
}

}  // namespace moe::schema
