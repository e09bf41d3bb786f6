// Step-time breakdown: the model marks the end of each piece of work with lap(phase); the time
// since the previous mark goes to that phase. Only a fencing timer (set_fencing(true): moe-bench
// --profile, MOE_PROFILE=1) waits for the device at each mark, so device work is counted where
// it ran; a normal run never fences for timing (each fence idles a GPU), and its phases are
// then host-side times (exact on the synchronous host backends). A null timer costs nothing.
#pragma once

#include <array>
#include <chrono>

#include "common.hpp"
#include "fence.hpp"

namespace moe {

// Forward and backward of the two GEMM-heavy parts are separate phases, so a regression shows
// where it happens; "loss" is the LM head and the cross-entropy, "rest" the norms, residuals,
// the batch upload and the gradient zeroing.
enum class Phase {
  Embedding,
  AttentionFwd,
  AttentionBwd,
  Router,
  Dispatch,
  ExpertsFwd,
  ExpertsBwd,
  Combine,
  Loss,
  Rest,
  Optimizer,
  Count
};
constexpr int kNumPhases = int(Phase::Count);
inline const char* phase_name(int p) {
  static const char* names[kNumPhases] = {"embedding", "attention_fwd", "attention_bwd", "router",
                                          "dispatch",  "experts_fwd",   "experts_bwd",   "combine",
                                          "loss",      "rest",          "optimizer"};
  return names[p];
}

class PhaseTimer {
 public:
  using clock = std::chrono::steady_clock;
  void set_fencing(bool on) { fencing_ = on; }
  bool fencing() const { return fencing_; }
  void start() {
    if (fencing_) fence("moe::phase_timer");
    mark_ = clock::now();
  }
  void lap(Phase p) {
    if (fencing_) fence("moe::phase_timer");
    const auto now = clock::now();
    seconds_[int(p)] += std::chrono::duration<double>(now - mark_).count();
    mark_ = now;
  }
  // Seconds per phase since the last take(); clears them.
  std::array<double, kNumPhases> take() {
    auto out = seconds_;
    seconds_.fill(0.0);
    return out;
  }

 private:
  bool fencing_ = false;
  clock::time_point mark_ = clock::now();
  std::array<double, kNumPhases> seconds_{};
};

// lap() on a possibly-null timer.
inline void lap(PhaseTimer* t, Phase p) {
  if (t) t->lap(p);
}

}  // namespace moe
