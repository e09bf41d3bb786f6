// Step-time breakdown: the model marks the end of each piece of work with lap(phase); the time
// since the previous mark (after a fence, so device work is counted where it ran) goes to that
// phase. A null timer costs nothing.
#pragma once

#include <array>
#include <chrono>

#include "common.hpp"

namespace moe {

enum class Phase { Router, Dispatch, Experts, Combine, Attention, Rest, Optimizer, Count };
constexpr int kNumPhases = int(Phase::Count);
inline const char* phase_name(int p) {
  static const char* names[kNumPhases] = {"router",    "dispatch", "experts",  "combine",
                                          "attention", "rest",     "optimizer"};
  return names[p];
}

class PhaseTimer {
 public:
  using clock = std::chrono::steady_clock;
  void start() {
    ExecSpace().fence();
    mark_ = clock::now();
  }
  void lap(Phase p) {
    ExecSpace().fence();
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
  clock::time_point mark_ = clock::now();
  std::array<double, kNumPhases> seconds_{};
};

// lap() on a possibly-null timer.
inline void lap(PhaseTimer* t, Phase p) {
  if (t) t->lap(p);
}

}  // namespace moe
