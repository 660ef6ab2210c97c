// The training data loader: records with token ids and one or more images (caption pairs,
// VQA questions, NLVR2 image pairs) from a dataset's image store, decoded and augmented on a
// thread pool with a bounded prefetch queue; plus in-order loading for evaluation.
//
// Order: every epoch is one permutation of all samples, a pure function of (seed, epoch).
// A global batch is `global_batch` consecutive positions of it; rank r of w takes the r-th
// of w equal slices, so ranks read disjoint samples and their union is the global batch.
// The augmentation of a sample depends on (seed, epoch, position) only, never on the rank,
// the world size or the thread count. Incomplete last batches are dropped.
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <deque>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "eve/core/error.h"
#include "eve/core/threads.h"
#include "eve/image/augment.h"
#include "eve/io/image_store.h"

namespace eve::train {

struct Sample {
  std::vector<std::string> images;  // image store keys (1, or 2 for NLVR2)
  std::vector<int64_t> ids;         // token ids as eve-tokenize wrote them (CLS ... SEP)
  std::string where;                // "file:line" for error messages
};

// Checks a JSON "ids" value: a non-empty list of integers in [0, vocab_size) (vocab_size <= 0
// skips the range check); errors name `where`.
std::vector<int64_t> parse_token_ids(const nlohmann::json& value, const std::string& where,
                                     int vocab_size);

// Reads <dir>/<split>.jsonl: records with "image" and "ids" (or "ids_list", one sample per
// list entry). A record without ids, or ids that are not integers in [0, vocab_size), is an
// error naming file:line (vocab_size <= 0 skips the range check).
std::vector<Sample> read_pair_samples(const std::string& dir, const std::string& split,
                                          int vocab_size);

// The error of a records file that holds no records (an empty split), naming the file and
// where its records come from.
Error empty_split(const std::string& path);

struct LoaderOptions {
  std::string dir;
  int64_t global_batch = 32;   // samples per micro-batch summed over ranks
  int rank = 0, world = 1;
  uint64_t seed = 0;
  int max_text_len = 40;
  int pad_id = 0;
  int threads = 1;
  int prefetch = 4;            // micro-batches decoded ahead
  image::AugmentOptions augment;
};

struct Batch {
  torch::Tensor images;    // [b,3,R,R] float in [-1, 1]: each sample's first image
  torch::Tensor images2;   // [b,3,R,R] the second images (samples with two), else undefined
  torch::Tensor samples;   // [b] int64: indices into the loader's samples
  torch::Tensor ids;       // [b,T] int64, padded with pad_id
  torch::Tensor mask;      // [b,T] int64, 1 = token
  int64_t epoch = 0;
  int64_t index = 0;       // micro-batch index within the epoch
  int64_t first = 0;       // position in the epoch's permutation of this rank's first sample
};

// Position of the first sample of `rank` in micro-batch `index`.
inline int64_t slice_start(int64_t index, int64_t global_batch, int rank, int world) {
  return index * global_batch + rank * (global_batch / world);
}

// Checks that `options` can cut `samples` records (called `unit`, e.g. "samples") into whole
// micro-batches split evenly over the ranks; throws eve::Error / UsageError otherwise.
void check_batching(const LoaderOptions& options, size_t samples, const std::string& unit);

// The epoch's order: sample indices permuted by (seed, epoch).
std::vector<int64_t> epoch_order(int64_t samples, uint64_t seed, int64_t epoch);

class Loader {
 public:
  Loader(std::vector<Sample> samples, LoaderOptions options);
  ~Loader();
  int64_t batches_per_epoch() const;
  int64_t samples() const { return static_cast<int64_t>(samples_.size()); }
  // Positions the loader at micro-batch `index` of `epoch` (drops what was prefetched).
  void seek(int64_t epoch, int64_t index);
  // The next micro-batch of this rank, moving to the next epoch after the last one.
  Batch next();
  // Evaluation: the given samples in the given order, with the evaluation transform (resize
  // to res x res, no augmentation), decoded on the loader's threads.
  Batch load(const std::vector<int64_t>& samples);
  const std::vector<Sample>& sample_list() const { return samples_; }

 private:
  struct Decoded {
    std::vector<float> pixels;  // images one after the other
    std::vector<int64_t> ids;
    int64_t sample = 0;
  };
  struct Pending {
    int64_t epoch, index;
    std::vector<std::future<Decoded>> items;
  };
  void fill();
  // epoch < 0: the evaluation transform.
  Decoded decode(int64_t epoch, int64_t position, int64_t sample) const;
  Batch collect(Pending& p);

  std::vector<Sample> samples_;
  size_t images_per_sample_ = 1;
  LoaderOptions o_;
  io::ImageStore store_;
  std::unique_ptr<ThreadPool> pool_;
  std::vector<int64_t> order_;
  int64_t order_epoch_ = -1;
  int64_t next_epoch_ = 0, next_index_ = 0;  // the next micro-batch to submit
  std::deque<Pending> pending_;
};

}  // namespace eve::train
