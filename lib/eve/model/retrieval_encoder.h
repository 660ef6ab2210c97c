// Batched inference passes for retrieval on a loaded bundle: ITC embeddings of images
// (vision pass) and texts (text pass), and ITM match logits of image-text pairs (vl pass),
// each pass under the run's --precision (model::run_precision), as EVE's retrieval evaluation
// computes them (docs/architecture.md, "Fine-tuning and retrieval evaluation"). eve-embed,
// eve-rank --rerank and eve-finetune's retrieval evaluation all use it, so it lives below
// search and train.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "eve/model/eve_model.h"

namespace eve::model {

class RetrievalEncoder {
 public:
  // Puts the model in eval mode on `device`. Throws eve::Error naming `bundle` when the
  // model lacks the heads the passes need (itc; itm for match()).
  RetrievalEncoder(EveModel model, torch::Device device, const std::string& bundle,
                   bool need_itm = false);

  // [B,3,R,R] float (any device) -> [B,D] float on the CPU, rows L2-normalised.
  torch::Tensor images(const torch::Tensor& pixels);
  // Token id lists -> [B,D] float on the CPU, rows L2-normalised.
  torch::Tensor texts(const std::vector<const std::vector<int64_t>*>& tokens);
  // ITM "match" logit (index 1) of each (image i, text i) pair -> [B] float on the CPU.
  torch::Tensor match(const torch::Tensor& pixels,
                      const std::vector<const std::vector<int64_t>*>& tokens);

  // Ids [B,T] and mask [B,T] (T = max_text_len): each text padded with the pad id, or cut
  // to T with its last id ([SEP]) kept last.
  void text_batch(const std::vector<const std::vector<int64_t>*>& tokens, torch::Tensor& ids,
                  torch::Tensor& mask);
  int64_t truncated() const { return truncated_; }  // texts cut so far
  int64_t dim() const;
  int image_res() const { return model_->config().image_res; }

 private:
  EveModel model_;
  torch::Device device_;
  int64_t truncated_ = 0;
};

}  // namespace eve::model
