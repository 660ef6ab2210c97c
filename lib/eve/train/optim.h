// Optimisation pieces shared by the trainers: the learning-rate schedule, AdamW with
// decoupled weight decay over two parameter groups, gradient clipping, and the optimiser
// state as a safetensors file keyed by parameter name.
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

namespace eve::train {

// Linear warm-up from 0 to `lr` over `warmup` steps, then cosine or linear decay to
// `min_lr` at `total` steps (or constant). Steps count from 0; at(s) is the rate used by
// optimiser step s.
struct Schedule {
  double lr = 1e-4, min_lr = 0.0;
  int64_t warmup = 0, total = 1;
  std::string decay = "cosine";  // cosine | linear | constant
  double at(int64_t step) const;
};

// True for parameters that take no weight decay: biases, norms, layer-scale and every other
// 0-d/1-d vector (CLS, type, q/v biases, modality tags, the ITC temperature), and the
// embeddings and position tables (word_embedding, pos_embed*, mask tokens).
bool exempt_from_decay(const std::string& name, const torch::Tensor& param);

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.98, eps = 1e-8, weight_decay = 0.01;
};

// AdamW as torch.optim.AdamW computes it (decoupled decay p -= lr*wd*p, bias-corrected
// moments); parameters without a gradient are skipped.
class AdamW {
 public:
  AdamW(std::vector<std::pair<std::string, torch::Tensor>> params, AdamWOptions options);
  // Optimiser step at learning rate lr (times each parameter's multiplier). `apply`: an
  // optional 0-d bool tensor on the parameters' device; where it is false the step leaves
  // parameters and moments unchanged.
  void step(double lr, const torch::Tensor& apply = {});
  // Parameters named in `names` take lr * multiplier (the lr_mult of newly initialised
  // heads in fine-tuning); returns how many parameters matched.
  size_t set_lr_multiplier(const std::vector<std::string>& names, double multiplier);
  void zero_grad();
  int64_t steps() const { return steps_; }
  // Number of parameters in the decay and no-decay groups.
  std::pair<int64_t, int64_t> group_sizes() const;
  const std::vector<std::pair<std::string, torch::Tensor>>& params() const { return params_; }
  // "<name>.exp_avg" and "<name>.exp_avg_sq" tensors plus metadata {"step": n}.
  void save(const std::string& path) const;
  // Throws eve::Error naming the file and tensor when a tensor is missing or mis-shaped.
  void load(const std::string& path);

 private:
  std::vector<std::pair<std::string, torch::Tensor>> params_;
  std::vector<bool> decay_;
  std::vector<double> lr_mult_;
  std::vector<torch::Tensor> exp_avg_, exp_avg_sq_;
  AdamWOptions o_;
  int64_t steps_ = 0;
};

// Scales all gradients so their global L2 norm is at most max_norm (0 = no clipping): when
// the norm exceeds it, by max_norm / (norm + 1e-6). Returns the norm before clipping as a 0-d
// float32 tensor on the gradients' device, without reading it on the host.
torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm);

}  // namespace eve::train
