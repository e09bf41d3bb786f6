// The tiny model the layer and router tests start from: vocab 16, d_model 8, 2 heads, d_ff 6,
// 2 layers of 4 tokens, with the given router, experts and k. Each test then sets only what it
// checks (capacity, masks, clusters, loss weights), so the shape is defined in one place.
#pragma once

#include <string>

#include "config/config.hpp"

namespace moe::test {

inline Config tiny_config(const std::string& router, int num_experts, int top_k) {
  Config c;
  c.model.vocab_size = 16;
  c.model.d_model = 8;
  c.model.n_heads = 2;
  c.model.d_ff = 6;
  c.model.n_layers = 2;
  c.model.seq_len = 4;
  c.model.num_experts = num_experts;
  c.model.top_k = top_k;
  c.router.type = router;
  return c;
}

// The smallest model the training tests run for tens of steps: vocab 128, d_model 32, 2 heads,
// d_ff 32, 16 tokens, batch 4, with the default 8 experts top-2 and router, on a synthetic
// corpus of 20000 training and 2000 validation tokens.
inline Config small_training_config(int steps) {
  Config c;
  c.model.vocab_size = 128;
  c.model.d_model = 32;
  c.model.n_heads = 2;
  c.model.d_ff = 32;
  c.model.seq_len = 16;
  c.train.batch_size = 4;
  c.train.steps = steps;
  c.data.train_tokens = 20000;
  c.data.val_tokens = 2000;
  return c;
}

}  // namespace moe::test
