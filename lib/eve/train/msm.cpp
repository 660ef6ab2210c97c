#include "eve/train/msm.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "eve/core/rng.h"
#include "eve/train/run_common.h"

namespace eve::train {

namespace {
constexpr uint64_t kMaskStream = 0x6d61736bull;  // "mask"

// MLM choice for row i of the batch: text_mask_ratio of the eligible tokens (real, not
// CLS/SEP/PAD; at least one), 80% [MASK], 10% a random non-special token, 10% unchanged.
void mask_text_row(Rng& rng, int64_t i, const torch::TensorAccessor<int64_t, 2>& in_ids,
                   const torch::TensorAccessor<int64_t, 2>& in_mask,
                   torch::TensorAccessor<int64_t, 2>& out_ids, torch::TensorAccessor<int64_t, 2>& labels,
                   const MsmOptions& o, const text::TokenizerInfo& tok) {
  const int64_t T = in_ids.size(1);
  std::vector<int64_t> eligible;
  for (int64_t t = 0; t < T; ++t) {
    const int64_t id = in_ids[i][t];
    if (in_mask[i][t] && id != tok.cls_id && id != tok.sep_id && id != tok.pad_id) eligible.push_back(t);
  }
  if (eligible.empty()) return;
  std::vector<int64_t> chosen;
  for (int64_t t : eligible)
    if (rng.chance(o.text_mask_ratio)) chosen.push_back(t);
  if (chosen.empty()) chosen.push_back(eligible[static_cast<size_t>(rng.below(static_cast<int>(eligible.size())))]);
  for (int64_t t : chosen) {
    labels[i][t] = in_ids[i][t];
    const double u = rng.uniform();
    if (u < 0.8) {
      out_ids[i][t] = tok.mask_id;
    } else if (u < 0.9) {
      int64_t r;
      do r = rng.below(tok.vocab_size); while (tok.is_special(static_cast<int>(r)));
      out_ids[i][t] = r;
    }
  }
}

}  // namespace

int64_t visible_patches(int64_t patches, double ratio) {
  const int64_t masked = static_cast<int64_t>(std::llround(ratio * static_cast<double>(patches)));
  return std::clamp<int64_t>(patches - masked, 1, std::max<int64_t>(1, patches - 1));
}

MsmMasks make_msm_masks(const torch::Tensor& ids, const torch::Tensor& mask, int64_t patches,
                        const MsmOptions& o, const text::TokenizerInfo& tok, uint64_t seed,
                        int64_t micro, int64_t first) {
  const int64_t b = ids.size(0), T = ids.size(1);
  const int64_t K = patches > 0 ? visible_patches(patches, o.image_mask_ratio) : 0;
  MsmMasks m;
  if (patches > 0) {
    m.ids_keep = torch::empty({b, K}, torch::kInt64);
    m.mim_mask = torch::ones({b, patches});
  }
  m.mlm_ids = ids.clone();
  m.mlm_labels = torch::full({b, T}, int64_t{-100}, torch::kInt64);
  auto in_ids = ids.accessor<int64_t, 2>();
  auto in_mask = mask.accessor<int64_t, 2>();
  auto out_ids = m.mlm_ids.accessor<int64_t, 2>();
  auto labels = m.mlm_labels.accessor<int64_t, 2>();
  std::vector<int64_t> perm(static_cast<size_t>(patches));
  for (int64_t i = 0; i < b; ++i) {
    Rng rng(seed, kMaskStream + static_cast<uint64_t>(micro), static_cast<uint64_t>(first + i));
    if (patches > 0) {
      auto keep = m.ids_keep.accessor<int64_t, 2>();
      auto mim = m.mim_mask.accessor<float, 2>();
      std::iota(perm.begin(), perm.end(), 0);
      rng.shuffle(perm);
      std::sort(perm.begin(), perm.begin() + K);
      for (int64_t k = 0; k < K; ++k) {
        keep[i][k] = perm[static_cast<size_t>(k)];
        mim[i][perm[static_cast<size_t>(k)]] = 0.0f;
      }
    }
    mask_text_row(rng, i, in_ids, in_mask, out_ids, labels, o, tok);
  }
  return m;
}

double masked_patch_count(const MsmMasks& masks) {
  if (!masks.mim_mask.defined()) return 0;
  const torch::Tensor m = masks.mim_mask.contiguous();
  const float* p = m.data_ptr<float>();
  return std::accumulate(p, p + m.numel(), 0.0);
}

double chosen_token_count(const MsmMasks& masks) {
  const torch::Tensor l = masks.mlm_labels.contiguous();
  const int64_t* p = l.data_ptr<int64_t>();
  return static_cast<double>(std::count_if(p, p + l.numel(), [](int64_t v) { return v != -100; }));
}

torch::Tensor mim_targets(const torch::Tensor& images, int64_t patch, bool normalise) {
  torch::Tensor t = model::patchify(images, patch);
  if (!normalise) return t;
  torch::Tensor mean = t.mean(-1, true);
  torch::Tensor var = t.var(-1, /*unbiased=*/false, /*keepdim=*/true);
  return (t - mean) / (var + 1e-6).sqrt();
}

torch::Tensor mim_loss_sum(const torch::Tensor& pred, const torch::Tensor& target,
                           const torch::Tensor& mim_mask) {
  return ((pred - target).pow(2).mean(-1) * mim_mask).sum();
}

torch::Tensor mim_loss(model::EveModelImpl& model, const model::EncoderOutput& encoded,
                       const torch::Tensor& images, const MsmMasks& masks, bool norm_target,
                       double count) {
  torch::Tensor pred = model.mim_predict(encoded, masks.ids_keep).to(torch::kFloat32);  // bf16 under autocast
  torch::Tensor target = mim_targets(images, model.config().patch_size, norm_target);
  const torch::Tensor sum = mim_loss_sum(pred, target, masks.mim_mask);
  return count > 0 ? sum / count : sum / masks.mim_mask.sum().clamp_min(1);
}

torch::Tensor mlm_loss(model::EveModelImpl& model, const model::EncoderOutput& encoded,
                       const torch::Tensor& labels, double count) {
  torch::Tensor text = encoded.hidden.narrow(1, encoded.num_vision, encoded.hidden.size(1) - encoded.num_vision);
  // Flat indices of the chosen positions, found on the host: a boolean index on the device
  // would read the count back before it could size its result.
  const torch::Tensor host = labels.to(torch::kCPU).reshape({-1}).contiguous();
  const int64_t* l = host.data_ptr<int64_t>();
  std::vector<int64_t> chosen;
  for (int64_t i = 0; i < host.numel(); ++i)
    if (l[i] != -100) chosen.push_back(i);
  if (count <= 0) count = static_cast<double>(chosen.size());
  if (chosen.empty()) return torch::zeros({}, encoded.hidden.options());
  const torch::Tensor at = torch::tensor(chosen, torch::kInt64);
  torch::Tensor rows = text.reshape({-1, text.size(2)}).index_select(0, batch_to(at, text.device()));
  torch::Tensor targets = batch_to(host.index_select(0, at), text.device());
  return torch::nn::functional::cross_entropy(
             model.mlm_logits(rows).to(torch::kFloat32), targets,
             torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum)) /
         count;
}

MsmLoss msm_loss(model::EveModelImpl& model, const torch::Tensor& images, const torch::Tensor& ids,
                 const torch::Tensor& mask, const MsmMasks& masks, const MsmOptions& o,
                 double mim_count, double mlm_count) {
  const auto& cfg = model.config();
  MsmLoss out;
  // MIM: visible patches + complete text.
  model::EncoderInput a;
  a.image = images;
  a.ids_keep = masks.ids_keep;
  a.text_ids = ids;
  a.text_mask = mask;
  model::EncoderOutput ea = model.encode(model::Mode::vl, a);
  torch::Tensor mim = mim_loss(model, ea, images, masks, o.norm_target, mim_count);

  // MLM: complete image + masked text; the head only sees the chosen positions.
  model::EncoderInput b;
  b.image = images;
  b.text_ids = masks.mlm_ids;
  b.text_mask = mask;
  model::EncoderOutput eb = model.encode(model::Mode::vl, b);
  torch::Tensor mlm = mlm_loss(model, eb, masks.mlm_labels, mlm_count);

  torch::Tensor aux = (ea.aux + eb.aux) * 0.5;
  out.total = o.mim_weight * mim + o.mlm_weight * mlm + cfg.moe_lossweight * aux;
  out.mim = mim.detach();
  out.mlm = mlm.detach();
  out.aux = aux.detach();
  out.load = eb.load;
  accumulate_load(out.load, ea.load);
  return out;
}

}  // namespace eve::train
