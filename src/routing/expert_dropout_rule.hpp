// How many experts MoEC's expert dropout removes, shared by the router (which draws them) and
// the configuration check (which refuses a rate that removes none). Host-only, no Kokkos.
//
// The public MoEC code keeps int((1 - p) * E) experts: the kept count is rounded down, so every
// rate p > 0 drops at least one expert. This suite applies that rule
//  - "uniform": to all E experts at once (the public code): keep max(top_k, floor((1-p) E)),
//    chosen uniformly among all experts;
//  - "cluster" (the paper's cluster-level dropout): inside every cluster of c experts: drop
//    min(c - 1, c - floor((1-p) c)) per cluster (at least one survives in each), lowered until at
//    least top_k experts survive overall.
// Dropout therefore drops nothing only when p = 0, when top_k = E ("uniform"), or when c = 1 or
// G (c - 1) < top_k ("cluster"); the configuration refuses a rate p > 0 in those cases. For small
// E or c the realised rate exceeds p: floor rounding drops 1 of 2 experts (50%) at p = 0.25.
#pragma once

#include <algorithm>
#include <cmath>

namespace moe {

// floor((1 - p) * n) with a tolerance, so that e.g. (1 - 0.25) * 4 = 3 exactly and
// (1 - 0.7) * 10 = 3.0000000000000004 do not round the wrong way.
inline int dropout_survivors(double p, int n) {
  return int(std::floor((1.0 - p) * double(n) + 1e-9));
}

// Experts dropped inside each cluster under dropout_mode = "cluster".
inline int dropout_per_cluster(double p, int E, int cluster_size, int top_k) {
  const int c = cluster_size, G = E / cluster_size;
  int d = std::min(c - 1, c - dropout_survivors(p, c));
  d = std::max(0, d);
  while (d > 0 && G * (c - d) < top_k) --d;
  return d;
}

// Experts kept per dropout draw.
inline int dropout_kept_count(double p, int E, int cluster_size, int top_k, bool cluster_mode) {
  if (!(p > 0)) return E;
  if (cluster_mode) return E - (E / cluster_size) * dropout_per_cluster(p, E, cluster_size, top_k);
  return std::min(E, std::max(top_k, dropout_survivors(p, E)));
}

}  // namespace moe
