// Everything training appends to the run file: per-step losses, learning rate, gradient norm,
// throughput and phase times; per-step routing statistics of every MoE layer; evaluation
// results; routing traces. The names are those of train/run_schema.hpp.
// Collective: the routing statistics and traces are gathered from every rank, so every rank
// calls the same methods in the same order; only the rank holding the run file writes.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>

#include "io/run_file.hpp"
#include "model/phase_timer.hpp"
#include "model/transformer.hpp"
#include "parallel/comm.hpp"
#include "train/device_batch.hpp"
#include "train/evaluator.hpp"

namespace moe {

// What one training step leaves for the metrics.
struct StepMetrics {
  ForwardStats forward;  // loss (mean over the global batch) and auxiliary losses
  double lr = 0, grad_norm = 0;
  bool clipped = false;  // gradient clipping fired
  std::array<double, kNumPhases> phase_seconds{};
};

class MetricsRecorder {
 public:
  // `run` may be null: the collectives still run, nothing is written.
  MetricsRecorder(RunFile* run, const Transformer<float>& model, const DeviceBatch& batch,
                  const Comm& comm);

  // The frequency buckets the evaluation's perplexities are split by (written once).
  void record_buckets(const FrequencyBuckets& buckets, double frequency_split);
  // What the infrequent class covers (written once): share of the training tokens, types.
  void record_frequency_classes(double infrequent_train_mass, std::int64_t infrequent_types);
  // The step's metrics and the routing statistics of its global batch.
  void record_step(std::int64_t step, const StepMetrics& m, double tokens_per_s);
  // The corpus's identity: description, split, split sizes, entropies (root attributes).
  static void record_data(RunFile& f, const Corpus& corpus);
  void record_eval(const EvalResult& r);
  void record_test(const TestResult& t);
  // Token ids, assigned experts (-1: none) and gates of the model's last forward, per MoE
  // layer, gathered from every rank in global token order, under `group` (schema::kTrace*).
  void record_trace(const std::string& group, std::int64_t step);

  // Flushes the run file when the last flush is at least a second old: a killed run loses at
  // most the last second of metrics.
  void flush_if_due();
  // Seconds spent appending to the run file (and gathering what is appended).
  double seconds() const { return seconds_; }
  void add_seconds(double s) { seconds_ += s; }

 private:
  RunFile* run_;
  const Transformer<float>& model_;
  const DeviceBatch& batch_;
  const Comm& comm_;
  std::chrono::steady_clock::time_point last_flush_;
  double seconds_ = 0;
};

}  // namespace moe
