// Pieces every training loop shares: tokenizer ids in the model config, the metrics file of
// a resumed run, the expert-load summary of a step, the checks of
// a dataset dir before the first step, and what a loop says when it stops.
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
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

// A batch tensor made on the host, on the training device without making the host wait: on
// CUDA through pinned memory and a non-blocking copy (a blocking copy, or one from pageable
// memory, waits for every kernel queued before it, so the host could not run ahead of the
// device into the next step). Elsewhere t.to(device); an undefined tensor stays undefined.
torch::Tensor batch_to(const torch::Tensor& t, const torch::Device& device);

text::TokenizerInfo tokenizer_of(const model::ModelConfig& config);

// Reads tok.json into the config's vocabulary size and special ids. When `model_vocab` > 0
// (an existing model) the sizes must agree. With `run_dir` non-empty, the tokenizer
// model beside it (tok.model) is copied to RUN/tokenizer.model when it exists.
void adopt_tokenizer(const std::string& tok_json, model::ModelConfig& config, int model_vocab,
                     const std::string& run_dir);

// Copies the named regular files of `from` into `to` (created), each atomically; names
// that `from` lacks are skipped.
void copy_files(const std::filesystem::path& from, const std::filesystem::path& to,
                const std::vector<std::string>& names);

// Keeps the lines of metrics.jsonl with "step" <= step (a resumed run rewrites the later
// ones); a torn last line is dropped.
void truncate_metrics(const std::string& path, int64_t step);

// {"<layer>": [fraction of tokens whose first choice is expert e, ...], ...}
nlohmann::ordered_json expert_load_json(const std::vector<model::LayerLoad>& load);

// Adds the first-choice counts and tokens routed of `more` into `into`, layer by layer.
void accumulate_load(std::vector<model::LayerLoad>& into, const std::vector<model::LayerLoad>& more);

// Training-loader options for a model: its resolution, text length and pad id, this rank's
// slice of micro-batches of `micro_batch` samples, and the augmentation given.
LoaderOptions training_loader_options(const std::string& dir, int64_t micro_batch, int rank, int world,
                                      uint64_t seed, const model::ModelConfig& config, int threads, int prefetch,
                                      double crop_scale_min, bool flip, bool rand_augment);

// ---- the dataset dir, checked before the first step ----

// What the trainers read from the manifest.json eve-prep writes in a dataset dir.
struct DatasetManifest {
  bool found = false;   // false: no manifest.json (a dir made by hand): nothing below is known
  std::string path;     // DIR/manifest.json
  std::string task;     // "task": pairs, retrieval, vqa or nlvr2 ("" when missing)
  int short_side = 0;   // "image_policy"."short_side": the prepared images' shorter side
                        // (0: originals kept, or unknown)
};
DatasetManifest read_dataset_manifest(const std::string& dir);

// The splits a dataset dir holds: every DIR/*.jsonl as its split name, sorted.
std::vector<std::string> dataset_splits(const std::string& dir);

// DIR/SPLIT.jsonl, which must exist: else eve::Error "DIR/SPLIT.jsonl: no such records file
// (`why`; the splits in DIR: ...)". `why` says where the split name came from and how to
// change it.
std::string require_split(const std::string& dir, const std::string& split, const std::string& why);

// Warns when the model's side `res` is more than twice the side the dataset was prepared at:
// every image is upsampled, and a step costs (res/side)^2 times the pixels. `source` names
// where `res` came from, `fix` how to change it.
void warn_resolution(const DatasetManifest& manifest, int res, const std::string& source, const std::string& fix);

// ---- the loop ----

// Says "already complete at step N (checkpoint DIR)" and returns true when a run resumed at
// `step` has nothing left to train.
bool already_complete(int64_t step, int64_t total, const std::string& checkpoint_dir, bool say);

// The message of a clean stop after a signal: "stopped at step N; checkpoint saved in RUN;
// rerun the same command to resume".
std::string stopped_message(int64_t step, const std::string& run_dir);

// What the first SIGINT/SIGTERM prints at once (signals.h), for a trainer's rank 0.
void set_training_stop_note();

// A loop that failed with steps done since its last checkpoint (`saved` < `step`): calls
// `save` (rank 0 writes the checkpoint of `step`, no collective) and says so, so that a rerun
// resumes there. Errors of the save itself are reported and swallowed: the caller rethrows
// the original one. Not for a loss that went non-finite (its weights are not worth keeping).
void save_after_failure(int64_t step, int64_t saved, const std::string& run_dir, bool say,
                        const std::function<void()>& save);

}  // namespace eve::train
