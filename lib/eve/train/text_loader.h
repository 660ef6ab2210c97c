// Data for the stagewise pre-training of eve-pretrain (VLMo's image-only and text-only
// stages), beside the pair loader of loader.h:
//   - the image stage reads the records of a pairs dataset for their images only (records
//     need "image"; token ids are not needed and are ignored) and loads them with Loader;
//   - the text stage needs no image at all: records with token ids ("ids" or "ids_list"),
//     with or without an "image", are batched from the ids alone by TextLoader.
// TextLoader follows Loader's contract: each epoch is the permutation epoch_order(seed,
// epoch); a micro-batch is `global_batch` consecutive positions of it, rank r of w takes the
// r-th of w equal slices; the incomplete last batch is dropped; texts longer than
// max_text_len are cut.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "eve/train/loader.h"

namespace eve::train {

// <dir>/<split>.jsonl records with a string "image": one sample per record, no token ids.
std::vector<Sample> read_image_samples(const std::string& dir, const std::string& split);

struct TextSample {
  std::vector<int64_t> ids;  // CLS ... SEP as eve-tokenize wrote them
  std::string where;         // "file:line"
};

// <dir>/<split>.jsonl records with "ids" (one sample) or "ids_list" (one per entry); any
// "image" is ignored. A record without ids, or ids that are not integers in
// [0, vocab_size), is an error naming file:line (vocab_size <= 0 skips the range check).
std::vector<TextSample> read_text_samples(const std::string& dir, const std::string& split,
                                          int vocab_size);

class TextLoader {
 public:
  // Uses global_batch, rank, world, seed, max_text_len and pad_id of the options.
  TextLoader(std::vector<TextSample> samples, LoaderOptions options);
  int64_t batches_per_epoch() const;
  int64_t samples() const { return static_cast<int64_t>(samples_.size()); }
  // Positions the loader at micro-batch `index` of `epoch`.
  void seek(int64_t epoch, int64_t index);
  // The next micro-batch of this rank (images undefined), moving to the next epoch after
  // the last one.
  Batch next();

 private:
  std::vector<TextSample> samples_;
  LoaderOptions o_;
  std::vector<int64_t> order_;
  int64_t order_epoch_ = -1;
  int64_t epoch_ = 0, index_ = 0;
};

}  // namespace eve::train
