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
// moments); parameters without a gradient are skipped: neither decayed nor moved, their
// moments untouched.
//
// The parameters that have a gradient live in a few flat buffers, one per group of equal
// (device, dtype, decay, lr multiplier): each parameter keeps its tensor object, but its
// values and its gradient become views into its group's buffers (the backward pass then
// accumulates into them in place), and its moments are views into two more buffers. A step
// is then a fixed handful of whole-buffer operations per group, whatever the number of
// parameters, and reads nothing back from the device. A parameter joins when its gradient
// first appears, leaves when its gradient is reset to undefined, and the buffers are built
// again when someone replaces a parameter's data or gradient tensor (its address changes):
// the check compares host pointers before every step, zero_grad and clip_grad_norm.
class AdamW {
 public:
  AdamW(std::vector<std::pair<std::string, torch::Tensor>> params, AdamWOptions options);
  // Optimiser step at learning rate lr (times each parameter's multiplier). `apply`, when
  // given, is a 0-d bool tensor on the parameters' device: where it holds false the step
  // leaves every parameter and moment as it was, even when gradients hold NaN or infinity,
  // without reading the flag on the host. The step counter (and so the bias corrections,
  // host numbers) advances either way.
  void step(double lr, const torch::Tensor& apply = {});
  // Parameters named in `names` take lr * multiplier (the lr_mult of newly initialised
  // heads in fine-tuning); returns how many parameters matched.
  size_t set_lr_multiplier(const std::vector<std::string>& names, double multiplier);
  // Zeroes every gradient in place (one operation per flat buffer).
  void zero_grad();
  // clip_grad_norm over the parameters' gradients, one reduction per flat buffer. The
  // buffers are brought up to date first, so that the norm is always summed over the same
  // layout: a run resumed from a checkpoint clips its first step exactly as the
  // uninterrupted run clipped that step.
  torch::Tensor clip_grad_norm(double max_norm);
  // The flat gradient buffers, brought up to date (for collectives over whole buffers).
  std::vector<torch::Tensor> flat_gradients();
  int64_t steps() const { return steps_; }
  // Number of parameters in the decay and no-decay groups.
  std::pair<int64_t, int64_t> group_sizes() const;
  // Number of flat buffers the parameters with a gradient live in now.
  size_t flat_groups() const { return groups_.size(); }
  const std::vector<std::pair<std::string, torch::Tensor>>& params() const { return params_; }
  // "<name>.exp_avg" and "<name>.exp_avg_sq" tensors plus metadata {"step": n}.
  void save(const std::string& path) const;
  // Throws eve::Error naming the file and tensor when a tensor is missing or mis-shaped.
  void load(const std::string& path);

 private:
  struct Group {
    bool decay = false;
    double lr_mult = 1.0;
    torch::Tensor data, grad, exp_avg, exp_avg_sq;  // flat, 1-d
  };
  // Builds the flat buffers again when membership or aliasing changed (host check only).
  void refresh();
  void flatten();

  std::vector<std::pair<std::string, torch::Tensor>> params_;
  std::vector<bool> decay_;
  std::vector<double> lr_mult_;
  std::vector<torch::Tensor> exp_avg_, exp_avg_sq_;
  std::vector<Group> groups_;
  // Per parameter: the addresses its values and gradient had when the buffers were built
  // (meaningful where member_ is set).
  std::vector<bool> member_;
  std::vector<const void*> data_at_, grad_at_;
  bool stale_ = false;
  AdamWOptions o_;
  int64_t steps_ = 0;
};

// The defined gradients of `params`; gradients that are contiguous slices laid end to end in
// one storage (AdamW's flat buffers) come back joined as one 1-d view of that storage, so
// that whole-buffer operations replace per-parameter ones.
std::vector<torch::Tensor> gradient_spans(const std::vector<torch::Tensor>& params);

// The global L2 norm of the gradients as a 0-d float32 tensor on their device (a CPU zero
// when none has a gradient); when max_norm > 0 and the norm exceeds it, every gradient is
// scaled by max_norm / (norm + 1e-6). Nothing is read back to the host: the comparison and
// the scale stay on the device. The norm is ATen's float32 reduction of each buffer (its
// relative error is around 1e-7 for any size), then of those norms.
torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm);

}  // namespace eve::train
