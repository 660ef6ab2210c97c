// Image-text contrast (ITC) and image-text matching with hard negatives (ITM), as EVE's
// retrieval fine-tuning and the VLMo pre-training baseline compute them
// (docs/architecture.md, "Fine-tuning and retrieval evaluation"):
//   ITC: f_v = itc_image(vision CLS), f_t = itc_text(text CLS) (l2-normalised projections);
//        logits = f_v · f_allᵀ / τ against the features of the whole global batch (gathered
//        over ranks; the gathered rows' gradients return to their ranks, so N ranks compute
//        the gradient of one process with the global batch). Every pair whose group ids
//        are equal is a positive (captions of one image), targets row-normalised;
//        loss = ½ (CE_i2t + CE_t2i). Features and logits are float32 also under autocast.
//   ITM: global hard negative mining. Every rank computes the ITC logits of the whole global
//        batch (B = world · b rows, no gradient) and draws, for EVERY global image one
//        negative text and for every global text one negative image, with probability ∝
//        softmax(logits) + 1e-5, pairs of the same group excluded, then keeps the rows of its
//        own slice [rank · b, (rank + 1) · b). With the same seed on every rank, all ranks draw
//        the same global negatives, so N workers sample exactly what one process with the
//        global batch samples: same ITM loss and, after gradient averaging, same gradients.
//        Negatives that live on other ranks are fetched with one all-to-all of raw inputs
//        (ProcessGroup::fetch_rows; images, ids and mask, no gradient needed).
//        One vl pass over [positives ; negative images ; negative texts]; itm_head on the
//        pooled vector; labels 1, 0, 0; cross-entropy in float32.
//   total = itc_weight · ITC + itm_weight · ITM + moe_lossweight · aux (averaged over passes).
// Cost per rank and step, beyond the local batch: the all-gather of the features (B · D
// floats, which ITC needs anyway), the B × B logits and weights (two B² float matrices,
// O(B² · D) flops: 4 MB and 0.8 GFLOP at B = 1024, D = 768), and the fetched negatives: at
// most b images and b texts received (b · (3R² floats + 2T int64): 57 MB for b = 32 at
// R = 384), independent of the world size, where gathering the raw batch of every rank
// would receive (world − 1) · b of each (400 MB at 8 ranks).
// Seeds: with ContrastiveOptions::negative_seed the negatives come from a CPU generator of
// their own seeded with it (the trainers derive it from the run seed and the micro-batch
// index, never the rank); without it (one process only) from torch's default generator,
// which the trainers reseed every step.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "eve/model/eve_model.h"

namespace eve::train {

class ProcessGroup;

struct ContrastiveOptions {
  double itc_weight = 1.0;
  double itm_weight = 1.0;  // 0 = ITC only (no fusion pass)
  // Seed of the hard-negative draw, the same on every rank; required with an active group.
  std::optional<uint64_t> negative_seed;
};

struct ContrastiveLoss {
  torch::Tensor total;
  // 0-d tensors without gradient on the model's device, the values to log (itm and
  // itm_accuracy 0 without an ITM pass): reading them is left to the caller.
  torch::Tensor itc, itm, aux;
  torch::Tensor itm_accuracy;  // fraction of the 3b ITM pairs classified right (float64)
  std::vector<model::LayerLoad> load;
};

// ITC targets: [n,m] float, row i = (groups_a[i] == groups_b[j]) normalised to sum 1 (rows
// without a positive stay 0).
torch::Tensor itc_targets(const torch::Tensor& groups_a, const torch::Tensor& groups_b);

// Samples one index per row from weights [n,m] (>= 0); rows summing to 0 draw uniformly.
// With a (CPU) `generator` the random numbers come from it, on the CPU, and do not depend on
// torch's default generator or the device; else torch's default generator draws them on
// weights' device. The indices are drawn on weights' device, with no read of the device.
torch::Tensor sample_rows(torch::Tensor weights, std::optional<at::Generator> generator = std::nullopt);

// The hard negatives of a global batch: [B] int64 global row indices.
struct HardNegatives {
  torch::Tensor text_of_image;  // for image i: a text of another group
  torch::Tensor image_of_text;  // for text j: an image of another group
};
// Draws them from the global ITC logits [B,B] (image i vs text j) and the groups [B]: ∝
// softmax + 1e-5 along each row (columns for texts), same-group pairs at 0 (a row without
// any other group draws uniformly). Texts are drawn first, then images, with a CPU generator
// seeded with `seed`, or without a seed with torch's default generator.
HardNegatives sample_hard_negatives(const torch::Tensor& logits_i2t, const torch::Tensor& groups,
                                    std::optional<uint64_t> seed);

// images [b,3,R,R], ids/mask [b,T], groups [b] int64 (equal = same image). `pg` may be null
// (one process).
ContrastiveLoss contrastive_loss(model::EveModelImpl& model, const torch::Tensor& images,
                                 const torch::Tensor& ids, const torch::Tensor& mask,
                                 const torch::Tensor& groups, const ContrastiveOptions& options,
                                 ProcessGroup* pg);

}  // namespace eve::train
