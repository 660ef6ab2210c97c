#include "eve/train/optim.h"

#include <algorithm>
#include <cmath>

#include "eve/core/error.h"
#include "eve/io/safetensors.h"

namespace eve::train {

double Schedule::at(int64_t step) const {
  if (warmup > 0 && step < warmup) return lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (decay == "constant") return lr;
  const int64_t span = std::max<int64_t>(1, total - warmup);
  const double t = std::min(1.0, static_cast<double>(step - warmup) / static_cast<double>(span));
  if (decay == "linear") return min_lr + (lr - min_lr) * (1.0 - t);
  return min_lr + (lr - min_lr) * 0.5 * (1.0 + std::cos(3.14159265358979323846 * t));
}

bool exempt_from_decay(const std::string& name, const torch::Tensor& param) {
  if (param.dim() <= 1) return true;
  for (const char* key : {"word_embedding", "pos_embed", "mask_token", "mask_embed", "class_embedding",
                          "type_embed"})
    if (name.find(key) != std::string::npos) return true;
  return false;
}

AdamW::AdamW(std::vector<std::pair<std::string, torch::Tensor>> params, AdamWOptions options)
    : params_(std::move(params)), o_(options) {
  for (const auto& [name, p] : params_) {
    decay_.push_back(!exempt_from_decay(name, p));
    lr_mult_.push_back(1.0);
    exp_avg_.push_back(torch::zeros_like(p));
    exp_avg_sq_.push_back(torch::zeros_like(p));
  }
}

std::pair<int64_t, int64_t> AdamW::group_sizes() const {
  int64_t d = 0, n = 0;
  for (size_t i = 0; i < params_.size(); ++i) (decay_[i] ? d : n) += params_[i].second.numel();
  return {d, n};
}

void AdamW::zero_grad() {
  for (auto& [name, p] : params_)
    if (p.grad().defined()) p.mutable_grad().zero_();
}

size_t AdamW::set_lr_multiplier(const std::vector<std::string>& names, double multiplier) {
  size_t n = 0;
  for (size_t i = 0; i < params_.size(); ++i)
    if (std::find(names.begin(), names.end(), params_[i].first) != names.end()) {
      lr_mult_[i] = multiplier;
      ++n;
    }
  return n;
}

void AdamW::step(double base_lr, const torch::Tensor& apply) {
  torch::NoGradGuard guard;
  if (apply.defined() && !apply.item<bool>()) return;
  ++steps_;
  const double bc1 = 1.0 - std::pow(o_.beta1, static_cast<double>(steps_));
  const double bc2 = 1.0 - std::pow(o_.beta2, static_cast<double>(steps_));
  for (size_t i = 0; i < params_.size(); ++i) {
    torch::Tensor& p = params_[i].second;
    if (!p.grad().defined()) continue;
    const torch::Tensor& g = p.grad();
    const double lr = base_lr * lr_mult_[i];
    if (decay_[i] && o_.weight_decay != 0) p.mul_(1.0 - lr * o_.weight_decay);
    exp_avg_[i].mul_(o_.beta1).add_(g, 1.0 - o_.beta1);
    exp_avg_sq_[i].mul_(o_.beta2).addcmul_(g, g, 1.0 - o_.beta2);
    torch::Tensor denom = (exp_avg_sq_[i].sqrt() / std::sqrt(bc2)).add_(o_.eps);
    p.addcdiv_(exp_avg_[i], denom, -lr / bc1);
  }
}

void AdamW::save(const std::string& path) const {
  std::vector<io::TensorView> views;
  std::vector<torch::Tensor> keep;
  for (size_t i = 0; i < params_.size(); ++i) {
    for (int k = 0; k < 2; ++k) {
      torch::Tensor t = (k == 0 ? exp_avg_[i] : exp_avg_sq_[i]).to(torch::kCPU, torch::kFloat32).contiguous();
      keep.push_back(t);
      io::TensorView v;
      v.name = params_[i].first + (k == 0 ? ".exp_avg" : ".exp_avg_sq");
      v.dtype = io::DType::f32;
      v.shape = t.sizes().vec();
      v.data = t.data_ptr();
      v.nbytes = static_cast<size_t>(t.numel()) * sizeof(float);
      views.push_back(v);
    }
  }
  io::write_safetensors(path, views, {{"step", std::to_string(steps_)}, {"format", "eve-adamw"}});
}

void AdamW::load(const std::string& path) {
  io::SafetensorsReader r(path);
  auto it = r.metadata().find("step");
  if (it == r.metadata().end()) throw Error("no \"step\" in the metadata", path);
  steps_ = std::stoll(it->second);
  torch::NoGradGuard guard;
  for (size_t i = 0; i < params_.size(); ++i) {
    for (int k = 0; k < 2; ++k) {
      const std::string name = params_[i].first + (k == 0 ? ".exp_avg" : ".exp_avg_sq");
      const io::TensorView* v = r.find(name);
      torch::Tensor& dst = k == 0 ? exp_avg_[i] : exp_avg_sq_[i];
      if (!v || v->dtype != io::DType::f32 || v->shape != dst.sizes().vec())
        throw Error(v ? "tensor has another dtype or shape than the parameter" : "tensor missing", path, name,
                    "the checkpoint belongs to another model");
      torch::Tensor src = torch::empty(v->shape, torch::kFloat32);
      std::memcpy(src.data_ptr(), v->data, v->nbytes);
      dst.copy_(src);
    }
  }
}

torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm) {
  torch::NoGradGuard guard;
  // Summed in float64 one parameter after another, so the norm does not depend on how many
  // parameters there are or how a reduction kernel splits them.
  torch::Tensor sq;
  for (const auto& p : params)
    if (p.grad().defined()) {
      torch::Tensor s = p.grad().to(torch::kFloat64).pow(2).sum();
      sq = sq.defined() ? sq + s : s;
    }
  if (!sq.defined()) return torch::zeros({}, torch::kFloat32);
  const torch::Tensor norm = sq.sqrt();
  if (max_norm > 0) {
    const torch::Tensor scale =
        torch::where(norm > max_norm, max_norm / (norm + 1e-6), torch::ones_like(norm)).to(torch::kFloat32);
    for (const auto& p : params)
      if (p.grad().defined()) p.grad().mul_(scale.to(p.grad().dtype()));
  }
  return norm.to(torch::kFloat32);
}

}  // namespace eve::train
