// EVE's ITM re-rank: candidates found by the ITC inner product are scored again by the ITM
// "match" logit of the fusion pass. One re-ranker serves eve-rank --rerank (one query at a
// time while it streams top-k over a gallery) and eve-finetune's retrieval evaluation
// (whole score matrices); it owns how pairs are grouped into fusion passes, and the caller
// owns where pixels and token ids come from (ItmRows).
//
// Grouping matters: a compat official model routes its MoE layers with a capacity, so a
// pair's logit can depend on the other pairs of its pass. ItmBatching::per_query groups
// pairs as the released evaluation does; compat eve models route without a capacity at
// inference, and by_image groups pairs so each image's pixels are read once.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "eve/model/retrieval_encoder.h"

namespace eve::model {

// The rows a re-rank reads, numbered by the caller (rows of its score matrices, or of its
// query and gallery sets).
class ItmRows {
 public:
  virtual ~ItmRows() = default;
  // Pixels [n,3,R,R] float of the image rows `rows`, in that order (R = the model's
  // image_res).
  virtual torch::Tensor pixels(const std::vector<int64_t>& rows) = 0;
  // The token ids of text row `row`; the reference stays valid while the ItmRows lives.
  virtual const std::vector<int64_t>& tokens(int64_t row) = 0;
};

enum class ItmBatching {
  // Every pair among any query's candidates is scored once: image rows `batch` at a time,
  // their pairs (texts in increasing row order) `batch` per fusion pass.
  by_image,
  // Each query's candidates, in ITC order, form their own passes of up to `batch` pairs,
  // image queries first, then text queries; a pair that is a candidate of an image and of a
  // text is scored in each.
  per_query,
};

class ItmReranker {
 public:
  // `enc` must have been made with need_itm. Both are used, not owned.
  ItmReranker(RetrievalEncoder& enc, ItmRows& rows) : enc_(enc), rows_(rows) {}

  // The match logits [n] (float, CPU) of one query against its n candidates, in their
  // order: image row q against text rows (image_query) or text row q against image rows.
  // Passes take `batch` candidates at a time in that order; a query's image is read once
  // and an image query's pixels are shared by its pairs. A candidate listed twice is
  // scored twice.
  torch::Tensor query(bool image_query, int64_t q, const std::vector<int64_t>& candidates,
                      int64_t batch);

  // EVE's re-rank of whole ITC score matrices i2t [ni,nt] and t2i [nt,ni] (float, CPU):
  // each query's best k_test entries by ITC get their pair's ITM logit, every other entry
  // -100, as {i2t, t2i}.
  std::pair<torch::Tensor, torch::Tensor> rerank(const torch::Tensor& i2t, const torch::Tensor& t2i,
                                                 int64_t k_test, ItmBatching how, int64_t batch);

 private:
  std::pair<torch::Tensor, torch::Tensor> by_image(const torch::Tensor& top_t, const torch::Tensor& top_i,
                                                   int64_t ni, int64_t nt, int64_t batch);
  std::pair<torch::Tensor, torch::Tensor> per_query(const torch::Tensor& top_t, const torch::Tensor& top_i,
                                                    int64_t ni, int64_t nt, int64_t batch);

  RetrievalEncoder& enc_;
  ItmRows& rows_;
};

}  // namespace eve::model
