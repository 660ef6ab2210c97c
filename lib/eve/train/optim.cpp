#include "eve/train/optim.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <unordered_map>

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

namespace {

// ATen's float32 norm (libtorch 1.13 on the CPU) keeps one running sum, whose relative error
// grows with the length: 6e-5 at 3e6 values, 2e-3 at 3e7. Rows of kNormRow values are
// reduced each on their own, then the row norms the same way, so that no sum runs long and
// the result stays within about 1e-7 of the float64 norm whatever the size.
constexpr int64_t kNormRow = 4096;

torch::Tensor norm32(const torch::Tensor& t) {
  const bool narrow_type = t.scalar_type() == torch::kHalf || t.scalar_type() == torch::kBFloat16;
  const torch::Tensor v = narrow_type ? t.to(torch::kFloat32).view({-1}) : t.dim() == 1 ? t : t.reshape({-1});
  const int64_t n = v.numel(), rows = n / kNormRow;
  if (rows <= 1) return v.norm();
  torch::Tensor parts = torch::linalg_vector_norm(v.narrow(0, 0, rows * kNormRow).view({rows, kNormRow}), 2, {1});
  if (rows * kNormRow < n) parts = torch::cat({parts, v.narrow(0, rows * kNormRow, n - rows * kNormRow)});
  return norm32(parts);
}

// The global norm of `tensors` and the clipping, in whole-tensor operations on their device.
torch::Tensor clip_tensors(const std::vector<torch::Tensor>& tensors, double max_norm) {
  torch::NoGradGuard guard;
  if (tensors.empty()) return torch::zeros({}, torch::kFloat32);
  torch::Tensor norm;
  if (tensors.size() == 1) {
    norm = norm32(tensors[0]);
  } else {
    std::vector<torch::Tensor> norms;
    for (const auto& t : tensors) norms.push_back(norm32(t));
    norm = norm32(torch::stack(norms));
  }
  if (norm.scalar_type() != torch::kFloat32) norm = norm.to(torch::kFloat32);
  if (max_norm > 0) {
    const torch::Tensor scale = torch::where(norm > max_norm, max_norm / (norm + 1e-6), 1.0);
    for (const auto& t : tensors) t.mul_(scale);
  }
  return norm;
}

}  // namespace

AdamW::AdamW(std::vector<std::pair<std::string, torch::Tensor>> params, AdamWOptions options)
    : params_(std::move(params)), o_(options) {
  std::unordered_map<const void*, const std::string*> seen;
  for (const auto& [name, p] : params_) {
    // One tensor under two names would be two slots of the flat buffers for one set of values.
    auto [it, fresh] = seen.emplace(p.unsafeGetTensorImpl(), &name);
    if (!fresh) throw Error("the optimiser was given one tensor twice, as " + *it->second + " and " + name);
    decay_.push_back(!exempt_from_decay(name, p));
    lr_mult_.push_back(1.0);
    exp_avg_.push_back(torch::zeros_like(p));
    exp_avg_sq_.push_back(torch::zeros_like(p));
  }
  member_.assign(params_.size(), false);
  data_at_.assign(params_.size(), nullptr);
  grad_at_.assign(params_.size(), nullptr);
}

std::pair<int64_t, int64_t> AdamW::group_sizes() const {
  int64_t d = 0, n = 0;
  for (size_t i = 0; i < params_.size(); ++i) (decay_[i] ? d : n) += params_[i].second.numel();
  return {d, n};
}

void AdamW::refresh() {
  bool intact = !stale_;
  for (size_t i = 0; intact && i < params_.size(); ++i) {
    const torch::Tensor& p = params_[i].second;
    const torch::Tensor& g = p.grad();
    intact = g.defined() ? member_[i] && p.data_ptr() == data_at_[i] && g.data_ptr() == grad_at_[i] : !member_[i];
  }
  if (!intact) flatten();
  stale_ = false;
}

void AdamW::flatten() {
  torch::NoGradGuard guard;
  // Members in parameter order, grouped by what one whole-buffer update can share.
  std::vector<Group> groups;
  std::vector<std::vector<size_t>> members;
  for (size_t i = 0; i < params_.size(); ++i) {
    const torch::Tensor& p = params_[i].second;
    if (!p.grad().defined()) continue;
    size_t k = 0;
    while (k < groups.size() && !(groups[k].decay == decay_[i] && groups[k].lr_mult == lr_mult_[i] &&
                                  params_[members[k][0]].second.device() == p.device() &&
                                  params_[members[k][0]].second.scalar_type() == p.scalar_type()))
      ++k;
    if (k == groups.size()) {
      groups.push_back({decay_[i], lr_mult_[i], {}, {}, {}, {}});
      members.emplace_back();
    }
    members[k].push_back(i);
  }
  std::vector<bool> member(params_.size(), false);
  std::vector<const void*> data_at(params_.size(), nullptr), grad_at(params_.size(), nullptr);
  for (size_t k = 0; k < groups.size(); ++k) {
    Group& G = groups[k];
    int64_t total = 0;
    for (size_t i : members[k]) total += params_[i].second.numel();
    const auto opts = params_[members[k][0]].second.options();
    G.data = torch::empty({total}, opts);
    G.grad = torch::empty({total}, opts);
    G.exp_avg = torch::empty({total}, opts);
    G.exp_avg_sq = torch::empty({total}, opts);
    int64_t off = 0;
    for (size_t i : members[k]) {
      torch::Tensor& p = params_[i].second;
      const int64_t n = p.numel();
      auto slice = [&](const torch::Tensor& flat) { return flat.narrow(0, off, n).view(p.sizes()); };
      slice(G.data).copy_(p);
      slice(G.grad).copy_(p.grad());
      torch::Tensor m = slice(G.exp_avg), v = slice(G.exp_avg_sq);
      m.copy_(exp_avg_[i]);
      v.copy_(exp_avg_sq_[i]);
      // The parameter keeps its tensor object (modules and autograd hold it) and takes the
      // buffer's memory; with its gradient defined, backward adds into the slice in place.
      p.set_(slice(G.data));
      p.mutable_grad() = slice(G.grad);
      exp_avg_[i] = m;
      exp_avg_sq_[i] = v;
      member[i] = true;
      data_at[i] = p.data_ptr();
      grad_at[i] = p.grad().data_ptr();
      off += n;
    }
  }
  // A parameter that left (its gradient reset) takes its own memory again, so that the old
  // buffers can go.
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!member_[i] || member[i]) continue;
    torch::Tensor& p = params_[i].second;
    if (p.data_ptr() == data_at_[i]) p.set_(p.clone());
    exp_avg_[i] = exp_avg_[i].clone();
    exp_avg_sq_[i] = exp_avg_sq_[i].clone();
  }
  groups_ = std::move(groups);
  member_ = std::move(member);
  data_at_ = std::move(data_at);
  grad_at_ = std::move(grad_at);
}

void AdamW::zero_grad() {
  refresh();
  torch::NoGradGuard guard;
  for (auto& G : groups_) G.grad.zero_();
}

size_t AdamW::set_lr_multiplier(const std::vector<std::string>& names, double multiplier) {
  size_t n = 0;
  for (size_t i = 0; i < params_.size(); ++i)
    if (std::find(names.begin(), names.end(), params_[i].first) != names.end()) {
      stale_ = stale_ || lr_mult_[i] != multiplier;
      lr_mult_[i] = multiplier;
      ++n;
    }
  return n;
}

void AdamW::step(double base_lr, const torch::Tensor& apply) {
  if (apply.defined() && (apply.dim() != 0 || apply.scalar_type() != torch::kBool))
    throw Error("AdamW::step: `apply` must be a 0-d bool tensor");
  refresh();
  torch::NoGradGuard guard;
  ++steps_;
  const double bc1 = 1.0 - std::pow(o_.beta1, static_cast<double>(steps_));
  const double bc2 = 1.0 - std::pow(o_.beta2, static_cast<double>(steps_));
  auto denominator = [&](const Group& G) { return (G.exp_avg_sq.sqrt() / std::sqrt(bc2)).add_(o_.eps); };
  if (!apply.defined()) {
    for (auto& G : groups_) {
      const double lr = base_lr * G.lr_mult;
      if (G.decay && o_.weight_decay != 0) G.data.mul_(1.0 - lr * o_.weight_decay);
      G.exp_avg.mul_(o_.beta1).add_(G.grad, 1.0 - o_.beta1);
      G.exp_avg_sq.mul_(o_.beta2).addcmul_(G.grad, G.grad, 1.0 - o_.beta2);
      G.data.addcdiv_(G.exp_avg, denominator(G), -lr / bc1);
    }
    return;
  }
  // The same update with every factor chosen on the device: where `apply` is false each one
  // is the identity and the gradient reads as zero, so parameters and moments receive exact
  // zeros; a NaN or infinity of the skipped gradient never meets a zero factor (NaN * 0 is
  // NaN). The factors are float32 like the host scalars ATen turns them into.
  auto pick = [&](double yes, double no) { return torch::where(apply, yes, no); };
  const torch::Tensor beta1 = pick(o_.beta1, 1.0), beta2 = pick(o_.beta2, 1.0);
  for (auto& G : groups_) {
    const double lr = base_lr * G.lr_mult;
    const torch::Tensor g = torch::where(apply, G.grad, 0.0);
    if (G.decay && o_.weight_decay != 0) G.data.mul_(pick(1.0 - lr * o_.weight_decay, 1.0));
    G.exp_avg.mul_(beta1).add_(g, 1.0 - o_.beta1);
    G.exp_avg_sq.mul_(beta2).addcmul_(g, g, 1.0 - o_.beta2);
    G.data.addcdiv_(G.exp_avg * pick(-lr / bc1, 0.0), denominator(G));
  }
}

std::vector<torch::Tensor> AdamW::flat_gradients() {
  refresh();
  std::vector<torch::Tensor> grads;
  for (const auto& G : groups_) grads.push_back(G.grad);
  return grads;
}

torch::Tensor AdamW::clip_grad_norm(double max_norm) { return clip_tensors(flat_gradients(), max_norm); }

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

std::vector<torch::Tensor> gradient_spans(const std::vector<torch::Tensor>& params) {
  struct Piece {
    const void* storage;
    int64_t begin, end;
    size_t index;
  };
  std::vector<Piece> pieces;
  std::vector<std::pair<size_t, torch::Tensor>> spans;  // (first parameter index, tensor)
  for (size_t i = 0; i < params.size(); ++i) {
    const torch::Tensor& g = params[i].grad();
    if (!g.defined() || g.numel() == 0) continue;
    if (g.is_contiguous() && g.has_storage())
      pieces.push_back({g.storage().unsafeGetStorageImpl(), g.storage_offset(), g.storage_offset() + g.numel(), i});
    else
      spans.emplace_back(i, g);
  }
  std::sort(pieces.begin(), pieces.end(), [](const Piece& a, const Piece& b) {
    return std::less<const void*>()(a.storage, b.storage) || (a.storage == b.storage && a.begin < b.begin);
  });
  for (size_t a = 0; a < pieces.size();) {
    size_t b = a + 1, first = pieces[a].index;
    int64_t end = pieces[a].end;
    for (; b < pieces.size() && pieces[b].storage == pieces[a].storage && pieces[b].begin == end; ++b) {
      end = pieces[b].end;
      first = std::min(first, pieces[b].index);
    }
    const torch::Tensor& g = params[pieces[a].index].grad();
    spans.emplace_back(first, b == a + 1 ? g : g.as_strided({end - pieces[a].begin}, {1}, pieces[a].begin));
    a = b;
  }
  // Parameter order, not address order: the norm's summation order stays the same run to run.
  std::sort(spans.begin(), spans.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
  std::vector<torch::Tensor> out;
  for (auto& s : spans) out.push_back(std::move(s.second));
  return out;
}

torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm) {
  return clip_tensors(gradient_spans(params), max_norm);
}

}  // namespace eve::train
