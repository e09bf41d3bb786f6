// What --resume accepts: the config must equal the checkpoint's in every key except the ones
// that do not change what the training computes up to the checkpoint (resume_safe_keys()).
#pragma once

#include <string>
#include <vector>

namespace moe {

// Keys a resumed run may change: how long it trains (train.steps: the schedule then follows the
// new total from the resume step on), how often it evaluates, traces and checkpoints, where
// files go, and the expert-parallel layout (which does not change the mathematics).
const std::vector<std::string>& resume_safe_keys();

// Differences between two configs written by config_to_toml (the checkpoint's and the current
// one), as "key (checkpoint value -> current value)", safe keys left out, in schema order.
std::vector<std::string> resume_config_differences(const std::string& checkpoint_toml,
                                                   const std::string& current_toml);

// Throws UserError naming every differing key (and the safe ones) when there is any.
void check_resume_config(const std::string& checkpoint_toml, const std::string& current_toml);

}  // namespace moe
