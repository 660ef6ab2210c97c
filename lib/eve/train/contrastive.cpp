#include "eve/train/contrastive.h"

#include "eve/train/distributed.h"
#include "eve/train/run_common.h"

namespace eve::train {

namespace F = torch::nn::functional;
using torch::Tensor;

Tensor itc_targets(const Tensor& groups_a, const Tensor& groups_b) {
  Tensor eq = groups_a.view({-1, 1}).eq(groups_b.view({1, -1})).to(torch::kFloat32);
  return eq / eq.sum(1, true).clamp_min(1.0);
}

Tensor sample_rows(Tensor weights) {
  torch::NoGradGuard guard;
  weights = weights.to(torch::kFloat32).clone();
  Tensor empty = weights.sum(1).le(0);
  if (empty.any().item<bool>()) weights.index_put_({empty}, 1.0);
  return torch::multinomial(weights, 1).view({-1});
}


ContrastiveLoss contrastive_loss(model::EveModelImpl& m, const Tensor& images, const Tensor& ids,
                                 const Tensor& mask, const Tensor& groups, const ContrastiveOptions& o,
                                 ProcessGroup* pg) {
  ContrastiveLoss out;
  model::EncoderInput vin;
  vin.image = images;
  model::EncoderOutput vo = m.encode(model::Mode::vision, vin);
  model::EncoderInput tin;
  tin.text_ids = ids;
  tin.text_mask = mask;
  model::EncoderOutput to = m.encode(model::Mode::text, tin);
  Tensor fv = m.itc_image(vo.pooled), ft = m.itc_text(to.pooled);
  Tensor temp = m.itc_temperature();

  const bool gather = pg && pg->active();
  Tensor fv_all = gather ? pg->gather_rows(fv) : fv;
  Tensor ft_all = gather ? pg->gather_rows(ft) : ft;
  Tensor g = groups.to(fv.device());
  Tensor g_all = gather ? pg->gather_rows(g) : g;
  Tensor sim_i2t = torch::matmul(fv, ft_all.t()) / temp;
  Tensor sim_t2i = torch::matmul(ft, fv_all.t()) / temp;
  Tensor loss_i2t = -(F::log_softmax(sim_i2t, 1) * itc_targets(g, g_all)).sum(1).mean();
  Tensor loss_t2i = -(F::log_softmax(sim_t2i, 1) * itc_targets(g, g_all)).sum(1).mean();
  Tensor itc = 0.5 * (loss_i2t + loss_t2i);
  Tensor aux = vo.aux + to.aux;
  int passes = 2;
  accumulate_load(out.load, vo.load);
  accumulate_load(out.load, to.load);
  Tensor total = o.itc_weight * itc;

  if (o.itm_weight > 0) {
    const int64_t b = images.size(0);
    Tensor neg_text, neg_image;
    {
      torch::NoGradGuard guard;
      Tensor same = g.view({-1, 1}).eq(g.view({1, -1}));
      Tensor local_i2t = torch::matmul(fv, ft.t()) / temp;
      Tensor w_i2t = (F::softmax(local_i2t, 1) + 1e-5).masked_fill(same, 0);
      Tensor w_t2i = (F::softmax(local_i2t.t(), 1) + 1e-5).masked_fill(same, 0);
      neg_text = sample_rows(w_i2t);   // for image i: a text
      neg_image = sample_rows(w_t2i);  // for text j: an image
    }
    model::EncoderInput fin;
    fin.image = torch::cat({images, images.index_select(0, neg_image), images});
    fin.text_ids = torch::cat({ids, ids, ids.index_select(0, neg_text)});
    fin.text_mask = torch::cat({mask, mask, mask.index_select(0, neg_text)});
    model::EncoderOutput fo = m.encode(model::Mode::vl, fin);
    Tensor logits = m.itm_logits(fo.pooled);
    Tensor labels = torch::cat({torch::ones({b}, torch::kInt64), torch::zeros({2 * b}, torch::kInt64)})
                        .to(logits.device());
    Tensor itm = F::cross_entropy(logits, labels);
    total = total + o.itm_weight * itm;
    aux = aux + fo.aux;
    ++passes;
    accumulate_load(out.load, fo.load);
    out.itm = itm.item<double>();
    out.itm_accuracy = logits.argmax(1).eq(labels).to(torch::kFloat64).mean().item<double>();
  }
  aux = aux / passes;
  out.total = total + m.config().moe_lossweight * aux;
  out.itc = itc.item<double>();
  out.aux = aux.item<double>();
  return out;
}

}  // namespace eve::train
