#include "train/memory_estimate.hpp"

#include <Kokkos_Core.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "model/params.hpp"

#if defined(KOKKOS_ENABLE_CUDA)
#include <cuda_runtime.h>
#endif

namespace moe {

namespace {

constexpr double kFloat = 4;  // bytes of a float or an int32

// A number from a one-value file (cgroup limits); < 0 when absent or "max".
double read_number(const std::string& path) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text) || text == "max") return -1;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  return end != text.c_str() && *end == '\0' ? v : -1;
}

}  // namespace

MemoryEstimate estimate_memory(const Config& cfg, int ranks) {
  const ModelConfig& m = cfg.model;
  const double P = double(make_param_layout(m).total);
  const double B = double(cfg.train.batch_size) / double(ranks > 0 ? ranks : 1);
  const double S = m.seq_len, C = m.d_model, F = m.d_ff, V = m.vocab_size, H = m.n_heads;
  const double E = m.num_experts, K = m.num_experts > 1 ? m.top_k : 1;
  const double N = B * S;  // tokens on this rank
  MemoryEstimate e;
  e.parameters = 2 * P * kFloat;  // values and gradients
  e.optimizer = 2 * P * kFloat;   // AdamW m and v
  int moe_layers = 0;
  for (int l = 0; l < m.n_layers; ++l) moe_layers += block_is_moe(m, l) ? 1 : 0;
  const int dense_layers = m.n_layers - moe_layers;
  // Per block: residual, norms, attention output, q/k/v and the S x S attention map (saved and
  // its gradient).
  const double block = N * C * 5 + N * 3 * C + B * H * S * S;
  // A dense FFN saves its pre-activation and activation; an MoE layer, for N*K token copies,
  // its grouped inputs/outputs and hidden layers (forward) and their gradients, and the router's
  // logits, probabilities and their gradient.
  const double dense_ffn = N * F * 2;
  const double moe_ffn = N * K * (C * 4 + F * 3) + N * E * 3;
  // Final norm, logits and their gradient, and the backward scratch shared by the blocks.
  const double head = N * C * 4 + N * V * 2 + N * C * 2 + N * 3 * C + B * H * S * S + N * F;
  e.activations =
      kFloat * (m.n_layers * block + dense_layers * dense_ffn + moe_layers * moe_ffn + head);
  // Host copies of parameters and moments for a checkpoint, and the token splits.
  const double tokens = double(cfg.data.train_tokens) + double(cfg.data.val_tokens);
  e.buffers = 3 * P * kFloat + tokens * kFloat;
  return e;
}

AvailableMemory available_host_memory() {
  AvailableMemory a;
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  double kib = 0;
  std::string unit;
  while (meminfo >> key >> kib) {
    std::getline(meminfo, unit);
    if (key == "MemAvailable:") {
      a.bytes = kib * 1024;
      a.source = "MemAvailable in /proc/meminfo";
      break;
    }
  }
  struct Limit {
    const char* max;
    const char* current;
  };
  for (const Limit& l : {Limit{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"},
                         Limit{"/sys/fs/cgroup/memory/memory.limit_in_bytes",
                               "/sys/fs/cgroup/memory/memory.usage_in_bytes"}}) {
    const double limit = read_number(l.max);
    if (limit <= 0 || limit > 1e18) continue;  // v1 reports "no limit" as a huge number
    const double used = read_number(l.current);
    const double left = limit - (used > 0 ? used : 0);
    if (a.bytes < 0 || left < a.bytes) {
      a.bytes = left > 0 ? left : 0;
      a.source = std::string("the cgroup limit ") + l.max;
    }
    break;
  }
  return a;
}

AvailableMemory available_device_memory() {
  AvailableMemory a;
#if defined(KOKKOS_ENABLE_CUDA)
  std::size_t free_bytes = 0, total_bytes = 0;
  if (cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess) {
    a.bytes = double(free_bytes);
    a.source = "free memory of the CUDA device";
  }
#endif
  return a;
}

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int u = 0;
  while (bytes >= 1024 && u < 6) bytes /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", bytes, units[u]);
  return buf;
}

std::string check_memory(const Config& cfg, int ranks, int ranks_here) {
  const MemoryEstimate e = estimate_memory(cfg, ranks);
  // The model's buffers live in the device's memory on GPU builds, in host memory otherwise.
  const AvailableMemory device = available_device_memory();
  const bool on_device = device.bytes >= 0;
  const AvailableMemory avail = on_device ? device : available_host_memory();
  if (avail.bytes < 0) return "";
  const double need = on_device ? e.total() - e.buffers : e.total() * ranks_here;
  if (need <= avail.bytes) return "";
  std::ostringstream out;
  out << "the config needs at least " << human_bytes(need) << " of memory"
      << (on_device ? " on the device" : "")
      << (ranks_here > 1 && !on_device
              ? " for the " + std::to_string(ranks_here) + " ranks on this node"
              : std::string())
      << " (per rank: parameters and gradients " << human_bytes(e.parameters) << ", AdamW state "
      << human_bytes(e.optimizer) << ", activations " << human_bytes(e.activations)
      << ", host buffers " << human_bytes(e.buffers) << "), more than the "
      << human_bytes(avail.bytes) << " available (" << avail.source
      << "); allowed: a smaller model.* or train.batch_size, or more ranks";
  return out.str();
}

}  // namespace moe
