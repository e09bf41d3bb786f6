// Learning-rate schedule: linear warmup to train.lr over warmup_steps, then cosine decay to
// min_lr_ratio * lr at the last step. A pure function of the step, so a resumed run or a run
// cut into pieces follows exactly the schedule of the uninterrupted run.
#pragma once

#include <cmath>
#include <cstdint>

#include "config/config.hpp"

namespace moe {

inline double learning_rate(const TrainConfig& t, std::int64_t step) {
  if (step < t.warmup_steps) return t.lr * double(step + 1) / double(t.warmup_steps);
  const double span = double(std::max<std::int64_t>(1, t.steps - 1 - t.warmup_steps));
  const double progress = std::min(1.0, double(step - t.warmup_steps) / span);
  const double floor = t.lr * t.min_lr_ratio;
  return floor + 0.5 * (t.lr - floor) * (1.0 + std::cos(M_PI * progress));
}

}  // namespace moe
