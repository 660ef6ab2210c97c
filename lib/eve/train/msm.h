// Masked signal modeling (docs/architecture.md, "Pre-training: masked signal modeling"):
// masks, the MIM and MLM losses and the combined step loss. The masks of a sample depend
// only on (seed, micro-batch, position of the sample in the epoch order), so they are the
// same whatever the rank or world size.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "eve/model/eve_model.h"
#include "eve/text/tokenizer_info.h"

namespace eve::train {

struct MsmOptions {
  double image_mask_ratio = 0.75;  // fraction of patches dropped (at least one kept and one masked)
  double text_mask_ratio = 0.15;   // fraction of real tokens predicted (at least one per text)
  double mim_weight = 1.0, mlm_weight = 1.0;
  bool norm_target = true;         // per-patch normalised pixel targets
};

struct MsmMasks {
  torch::Tensor ids_keep;    // [b,K] int64 visible patches, ascending (undefined: no image)
  torch::Tensor mim_mask;    // [b,N] float, 1 = masked (predicted) patch (undefined: no image)
  torch::Tensor mlm_ids;     // [b,T] input ids with the 80/10/10 replacement applied
  torch::Tensor mlm_labels;  // [b,T] original id at chosen positions, -100 elsewhere (left on
                             // the CPU, mlm_loss finds the positions without a device read)
};

// Counts of masks made by make_msm_masks, read from their CPU tensors (no device read):
// the masked patches (0 without an image) and the text positions chosen for MLM.
double masked_patch_count(const MsmMasks& masks);
double chosen_token_count(const MsmMasks& masks);

// Patches kept out of N for a mask ratio.
int64_t visible_patches(int64_t patches, double ratio);

// ids/mask: [b,T] int64; `first` = epoch position of the first sample; `micro` = global
// micro-batch counter. Tokens eligible for MLM: real (mask 1), not CLS/SEP/PAD.
// patches = 0: text masks only (MLM without an image pass, or MLM on the complete image);
// ids_keep and mim_mask stay undefined.
MsmMasks make_msm_masks(const torch::Tensor& ids, const torch::Tensor& mask, int64_t patches,
                        const MsmOptions& o, const text::TokenizerInfo& tok, uint64_t seed,
                        int64_t micro, int64_t first);

// Per-patch pixel targets of images [b,3,R,R]: [b,N,P*P*3], normalised per patch
// ((x - mean) / sqrt(var + 1e-6), unbiased = false) when `normalise`.
torch::Tensor mim_targets(const torch::Tensor& images, int64_t patch, bool normalise);

// Sum over masked patches of the per-patch mean squared error (divide by the count for the
// mean). pred/target [b,N,F], mim_mask [b,N].
torch::Tensor mim_loss_sum(const torch::Tensor& pred, const torch::Tensor& target,
                           const torch::Tensor& mim_mask);

// MIM loss of an encoder pass over the visible patches (ids_keep of `masks`; any mode with
// vision tokens): the decoder's pixel predictions against mim_targets, mean squared error
// over the masked patches divided by `count` (0 = the batch's own number of masked patches,
// kept as a tensor).
torch::Tensor mim_loss(model::EveModelImpl& model, const model::EncoderOutput& encoded,
                       const torch::Tensor& images, const MsmMasks& masks, bool norm_target,
                       double count = 0);

// MLM loss of an encoder pass over masked text (vl or text mode): cross-entropy of the MLM
// head at the positions whose label is not -100, summed and divided by `count` (0 = the
// number of such positions); 0 when there is none. The positions are read from the labels
// on the host: labels on the CPU (as make_msm_masks makes them) cost no device read.
torch::Tensor mlm_loss(model::EveModelImpl& model, const model::EncoderOutput& encoded,
                       const torch::Tensor& labels, double count = 0);

struct MsmLoss {
  torch::Tensor total;          // the loss to differentiate
  torch::Tensor mim, mlm, aux;  // 0-d, without gradient: the values to log
  std::vector<model::LayerLoad> load;
};

// One micro-batch: both passes and the weighted loss. mim_count / mlm_count are the
// denominators (the global counts divided by the world size in distributed runs, so that
// averaging gradients over ranks gives the global mean); 0 = this batch's own counts.
MsmLoss msm_loss(model::EveModelImpl& model, const torch::Tensor& images, const torch::Tensor& ids,
                 const torch::Tensor& mask, const MsmMasks& masks, const MsmOptions& o,
                 double mim_count = 0, double mlm_count = 0);

}  // namespace eve::train
