// Image-text contrast (ITC) and image-text matching with hard negatives (ITM), as EVE's
// retrieval fine-tuning and the VLMo pre-training baseline compute them
// (reference/eve-model.md §3.4):
//   ITC: f_v = itc_image(vision CLS), f_t = itc_text(text CLS) (l2-normalised projections);
//        logits = f_v · f_allᵀ / τ against the features of the whole global batch (gathered
//        over ranks; the gathered rows' gradients return to their ranks, so N ranks compute
//        the gradient of one process with the global batch). Every pair whose group ids
//        are equal is a positive (captions of one image), targets row-normalised;
//        loss = ½ (CE_i2t + CE_t2i).
//   ITM: for each image one negative text and for each text one negative image, drawn from
//        the local batch with probability ∝ softmax(ITC logits) + 1e-5, pairs of the same
//        group excluded; one vl pass over [positives ; negative images ; negative texts];
//        itm_head on the pooled vector; labels 1, 0, 0; cross-entropy.
//   total = itc_weight · ITC + itm_weight · ITM + moe_lossweight · aux (averaged over passes).
// Negatives are sampled with torch's generator, which the trainers reseed every step.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "eve/model/eve_model.h"

namespace eve::train {

class ProcessGroup;

struct ContrastiveOptions {
  double itc_weight = 1.0;
  double itm_weight = 1.0;  // 0 = ITC only (no fusion pass)
};

struct ContrastiveLoss {
  torch::Tensor total;
  double itc = 0, itm = 0, aux = 0;
  double itm_accuracy = 0;  // fraction of the 3b ITM pairs classified right
  std::vector<model::LayerLoad> load;
};

// ITC targets: [n,m] float, row i = (groups_a[i] == groups_b[j]) normalised to sum 1 (rows
// without a positive stay 0).
torch::Tensor itc_targets(const torch::Tensor& groups_a, const torch::Tensor& groups_b);

// Samples one index per row from weights [n,m] (>= 0); rows summing to 0 draw uniformly.
torch::Tensor sample_rows(torch::Tensor weights);

// images [b,3,R,R], ids/mask [b,T], groups [b] int64 (equal = same image). `pg` may be null
// (one process).
ContrastiveLoss contrastive_loss(model::EveModelImpl& model, const torch::Tensor& images,
                                 const torch::Tensor& ids, const torch::Tensor& mask,
                                 const torch::Tensor& groups, const ContrastiveOptions& options,
                                 ProcessGroup* pg);

}  // namespace eve::train
