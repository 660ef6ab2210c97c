// Pieces every training loop shares: tokenizer ids in the model config, the metrics file of
// a resumed run, the expert-load summary of a step, gradient synchronisation.
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "eve/model/config.h"
#include "eve/model/eve_model.h"
#include "eve/text/tokenizer_info.h"
#include "eve/train/loader.h"

namespace eve::train {

class ProcessGroup;
struct DistEnv;

// The device a rank trains on, from init_runtime's answer ("cpu", "cuda", "cuda:N"): with
// several workers each one takes the GPU of its local rank.
torch::Device training_device(const std::string& runtime_device, const DistEnv& env);

text::TokenizerInfo tokenizer_of(const model::ModelConfig& config);

// Reads tok.json into the config's vocabulary size and special ids. When `model_vocab` > 0
// (an existing model) the sizes must agree. With `run_dir` non-empty, the tokenizer
// model beside it (tok.model) is copied to RUN/tokenizer.model when it exists.
void adopt_tokenizer(const std::string& tok_json, model::ModelConfig& config, int model_vocab,
                     const std::string& run_dir);

// Keeps the lines of metrics.jsonl with "step" <= step (a resumed run rewrites the later
// ones); a torn last line is dropped.
void truncate_metrics(const std::string& path, int64_t step);

// {"<layer>": [fraction of tokens whose first choice is expert e, ...], ...}
nlohmann::ordered_json expert_load_json(const std::vector<model::LayerLoad>& load);

// Adds load counts of `more` into `into` (layer by layer).
void accumulate_load(std::vector<model::LayerLoad>& into, const std::vector<model::LayerLoad>& more);

// Training-loader options for a model: its resolution, text length and pad id, this rank's
// slice of micro-batches of `micro_batch` samples, and the augmentation given.
LoaderOptions training_loader_options(const std::string& dir, int64_t micro_batch, int rank, int world,
                                      uint64_t seed, const model::ModelConfig& config, int threads, int prefetch,
                                      double crop_scale_min, bool flip, bool rand_augment);

// Gives parameters without a gradient a zero one, averages gradients over ranks and clips
// their global norm (0 = no clipping); returns the norm before clipping.
double sync_gradients(const std::vector<torch::Tensor>& params, ProcessGroup& pg, double clip);

}  // namespace eve::train
