#include "eve/train/contrastive.h"

#include <ATen/CPUGeneratorImpl.h>

#include "eve/core/error.h"
#include "eve/model/runtime.h"
#include "eve/train/distributed.h"
#include "eve/train/run_common.h"

namespace eve::train {

namespace F = torch::nn::functional;
using torch::Tensor;

Tensor itc_targets(const Tensor& groups_a, const Tensor& groups_b) {
  Tensor eq = groups_a.view({-1, 1}).eq(groups_b.view({1, -1})).to(torch::kFloat32);
  return eq / eq.sum(1, true).clamp_min(1.0);
}

Tensor sample_rows(Tensor weights, std::optional<at::Generator> generator) {
  torch::NoGradGuard guard;
  weights = weights.to(torch::kFloat32).clone();
  Tensor empty = weights.sum(1).le(0);
  weights.masked_fill_(empty.unsqueeze(1), 1.0);  // no host read, unlike testing for any first
  // The exponential race: with E_ij ~ Exp(1), argmax_j w_ij / E_ij is j with probability
  // w_ij / sum_j w_ij. It is what torch::multinomial(w, 1) computes, the same numbers from
  // the same generator, less multinomial's check of the weights, which reads them to the
  // host. With a generator the noise is drawn on the CPU (it does not depend on the weights)
  // and sent to the device without waiting for it.
  Tensor noise = generator ? torch::empty(weights.sizes(), torch::kFloat32)
                                 .exponential_(1, *generator)
                                 .to(weights.device(), /*non_blocking=*/true)
                           : torch::empty_like(weights).exponential_(1);
  return (weights / noise).argmax(1);
}

HardNegatives sample_hard_negatives(const Tensor& logits_i2t, const Tensor& groups, std::optional<uint64_t> seed) {
  torch::NoGradGuard guard;
  Tensor logits = logits_i2t.to(torch::kFloat32);
  Tensor g = groups.to(logits.device());
  Tensor same = g.view({-1, 1}).eq(g.view({1, -1}));
  Tensor w_i2t = (F::softmax(logits, 1) + 1e-5).masked_fill(same, 0);
  Tensor w_t2i = (F::softmax(logits.t(), 1) + 1e-5).masked_fill(same, 0);
  std::optional<at::Generator> generator;
  if (seed) generator = at::make_generator<at::CPUGeneratorImpl>(*seed);
  HardNegatives out;
  out.text_of_image = sample_rows(w_i2t, generator);
  out.image_of_text = sample_rows(w_t2i, generator);
  return out;
}

ContrastiveLoss contrastive_loss(model::EveModelImpl& m, const Tensor& images, const Tensor& ids,
                                 const Tensor& mask, const Tensor& groups, const ContrastiveOptions& o,
                                 ProcessGroup* pg) {
  const bool gather = pg && pg->active();
  if (gather && o.itm_weight > 0 && !o.negative_seed)
    throw Error("contrastive loss: hard negatives across ranks need ContrastiveOptions::negative_seed, the same "
                "on every rank");
  ContrastiveLoss out;
  model::EncoderInput vin;
  vin.image = images;
  model::EncoderOutput vo = m.encode(model::Mode::vision, vin);
  model::EncoderInput tin;
  tin.text_ids = ids;
  tin.text_mask = mask;
  model::EncoderOutput to = m.encode(model::Mode::text, tin);
  // Features, logits and the loss in float32 (under bf16 autocast the projections run in bf16).
  Tensor fv = m.itc_image(vo.pooled).to(torch::kFloat32), ft = m.itc_text(to.pooled).to(torch::kFloat32);
  Tensor temp = m.itc_temperature();

  Tensor fv_all = gather ? pg->gather_rows(fv) : fv;
  Tensor ft_all = gather ? pg->gather_rows(ft) : ft;
  Tensor g = groups.to(fv.device());
  Tensor g_all = gather ? pg->gather_rows(g) : g;
  Tensor itc;
  {
    model::NoAutocast full_precision;
    Tensor sim_i2t = torch::matmul(fv, ft_all.t()) / temp;
    Tensor sim_t2i = torch::matmul(ft, fv_all.t()) / temp;
    Tensor loss_i2t = -(F::log_softmax(sim_i2t, 1) * itc_targets(g, g_all)).sum(1).mean();
    Tensor loss_t2i = -(F::log_softmax(sim_t2i, 1) * itc_targets(g, g_all)).sum(1).mean();
    itc = 0.5 * (loss_i2t + loss_t2i);
  }
  Tensor aux = vo.aux + to.aux;
  int passes = 2;
  accumulate_load(out.load, vo.load);
  accumulate_load(out.load, to.load);
  Tensor total = o.itc_weight * itc;

  if (o.itm_weight > 0) {
    const int64_t b = images.size(0);
    const int world = gather ? pg->world() : 1;
    HardNegatives neg;
    {
      torch::NoGradGuard guard;
      model::NoAutocast full_precision;
      neg = sample_hard_negatives(torch::matmul(fv_all, ft_all.t()) / temp, g_all, o.negative_seed);
    }
    Tensor pair = torch::stack({ids, mask}, 1);  // ids and mask in one exchange
    Tensor neg_images, neg_text;
    if (gather) {
      // Row r: the negatives of rank r's slice [r · b, (r + 1) · b) of the global draw; the
      // chosen rows may live on any rank, and what each rank sends is decided on the host.
      neg_images = pg->fetch_rows(images, neg.image_of_text.view({world, b}).cpu());
      neg_text = pg->fetch_rows(pair, neg.text_of_image.view({world, b}).cpu());
    } else {
      // One process: the rows are local, picked on the device without a read.
      neg_images = images.index_select(0, neg.image_of_text.to(images.device()));
      neg_text = pair.index_select(0, neg.text_of_image.to(pair.device()));
    }
    model::EncoderInput fin;
    fin.image = torch::cat({images, neg_images, images});
    fin.text_ids = torch::cat({ids, ids, neg_text.select(1, 0)});
    fin.text_mask = torch::cat({mask, mask, neg_text.select(1, 1)});
    model::EncoderOutput fo = m.encode(model::Mode::vl, fin);
    Tensor logits = m.itm_logits(fo.pooled).to(torch::kFloat32);
    Tensor labels = torch::cat({torch::ones({b}, torch::kInt64), torch::zeros({2 * b}, torch::kInt64)})
                        .to(logits.device());
    Tensor itm = F::cross_entropy(logits, labels);
    total = total + o.itm_weight * itm;
    aux = aux + fo.aux;
    ++passes;
    accumulate_load(out.load, fo.load);
    out.itm = itm.detach();
    out.itm_accuracy = logits.argmax(1).eq(labels).to(torch::kFloat64).mean();
  }
  aux = aux / passes;
  out.total = total + m.config().moe_lossweight * aux;
  out.itc = itc.detach();
  out.aux = aux.detach();
  if (!out.itm.defined()) {
    out.itm = torch::zeros({}, itc.options());
    out.itm_accuracy = torch::zeros({}, itc.options().dtype(torch::kFloat64));
  }
  return out;
}

}  // namespace eve::train
