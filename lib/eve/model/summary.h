// A short description of a model bundle (eve-embed --describe). Torch-free.
#pragma once

#include <cstdint>
#include <string>

#include "eve/model/config.h"

namespace eve::model {

struct BundleSummary {
  std::string dir;
  ModelConfig config;
  int64_t tensors = 0;            // tensors in model.safetensors (buffers excluded)
  int64_t total_params = 0;       // elements in model.safetensors
  int64_t expert_params = 0;      // of which inside MoE experts
  int64_t active_params = 0;      // per token: total - experts + topk/E of the experts
  int64_t backbone_params = 0;    // "backbone." tensors
  std::string dtypes;             // e.g. "F32"
  bool tokenizer = false;
  bool answers = false;
};

// Reads config.json and the safetensors header of a bundle; errors name the file.
BundleSummary summarize_bundle(const std::string& dir);
// Human-readable lines ("parameters  475.5 M total, 192.2 M active per token", ...).
std::string format_summary(const BundleSummary& s);

}  // namespace eve::model
