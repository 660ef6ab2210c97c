// The fine-tuning run of eve-finetune, shared by the files that implement its parts:
// finetune_setup.cpp (options, data, model and optimiser, resume), finetune_losses.cpp (the
// three tasks' training losses), finetune_eval.cpp (validation, predictions, retrieval
// re-ranking) and finetune.cpp (the step loop, the best model, the final bundle). Internal:
// only those files include it.
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "eve/core/cli.h"
#include "eve/model/eve_model.h"
#include "eve/model/retrieval_encoder.h"
#include "eve/model/runtime.h"
#include "eve/train/distributed.h"
#include "eve/train/finetune.h"
#include "eve/train/finetune_data.h"
#include "eve/train/finetune_recipe.h"
#include "eve/train/loader.h"
#include "eve/train/optim.h"
#include "eve/train/run_common.h"
#include "eve/train/step_loop.h"

namespace eve::train {

// Texts longer than the model takes are cut, never refused: said once per split read.
void warn_long_texts(const TaskRecords& d, int max_len, const std::string& split);

struct Finetuner {
  using ojson = nlohmann::ordered_json;
  using Tensor = torch::Tensor;

  FinetuneOptions o;
  const cli::CommonOptions& common;
  Task task;
  Recipe r;
  DistEnv env;
  std::unique_ptr<ProcessGroup> pg;
  torch::Device device{torch::kCPU};
  model::Precision precision = model::Precision::fp32;
  model::EveModel model{nullptr};
  model::ModelConfig config;
  std::vector<std::string> answers;
  enum class AnswerSource { file, init, training };
  AnswerSource answers_source = AnswerSource::training;
  AnswerIndex answer_ids;
  std::unique_ptr<AdamW> opt;
  TaskRecords train_data;
  std::vector<std::vector<std::pair<int, float>>> targets;  // VQA, per training sample
  std::unique_ptr<Loader> loader;
  Schedule schedule;
  LoopState st;  // steps done, last checkpoint, where the run resumed
  int64_t total = 0, steps_per_epoch = 1, eval_every = 1;
  uint64_t seed = 0;
  double best_value = -1;
  int64_t best_step = -1;
  std::vector<std::string> new_params;  // take lr * lr_mult

  Finetuner(FinetuneOptions opts, const cli::CommonOptions& c) : o(std::move(opts)), common(c) {}

  bool rank0() const { return env.rank == 0; }
  bool has_val() const { return r.val != "none"; }
  std::string path(const std::string& name) const { return (std::filesystem::path(o.run_dir) / name).string(); }

  void load_model_from_init(bool keep_heads);

  // The VQA answer vocabulary of a new run.
  void choose_answers();

  // Where the answer list came from, as the log names it.
  std::string answers_origin() const;

  void setup();

  DatasetManifest manifest;

  // A dataset dir eve-prep made for another task holds records this task cannot train on.
  void check_dataset_task();

  // The splits the run evaluates or predicts after training, each with where its name came
  // from and how to change it.
  std::vector<std::pair<std::string, std::string>> eval_splits() const;

  // Every split the run evaluates or predicts after training must be there before the first
  // step (checked before anything is loaded), its records readable and their images in the
  // image store (checked once the model's vocabulary is known).
  void require_eval_splits();
  void check_eval_splits();

  void finish_model_setup();

  ojson run_json() const;

  ojson trainer_state(double loss) const;

  // ---- training losses ----

  // The training sample at row i of a loader batch, read from its host tensor.
  static size_t sample_of(const Batch& b, int64_t i) {
    return static_cast<size_t>(b.samples.data_ptr<int64_t>()[i]);
  }

  // The loss of micro-batch `micro` (the step's micro-batches counted over the run), its forward
  // passes under the run's precision; losses in float32.
  MicroLoss task_loss(const Batch& b, int64_t micro);

  std::pair<Tensor, Tensor> nlvr2_forward(const Tensor& left, const Tensor& right, const Tensor& ids,
                                          const Tensor& mask, std::vector<model::LayerLoad>* load);

  // ---- evaluation ----

  std::unique_ptr<Loader> eval_loader(const TaskRecords& data);

  template <typename Fn>
  void for_batches(int64_t n, int64_t batch, Fn fn) {
    for (int64_t start = 0; start < n; start += batch) {
      std::vector<int64_t> idx;
      for (int64_t i = start; i < std::min(n, start + batch); ++i) idx.push_back(i);
      fn(idx);
    }
  }
  template <typename Fn>
  void for_batches(int64_t n, Fn fn) {
    for_batches(n, o.eval_batch_size, fn);
  }

  // Evaluates one split; with `out_stem` non-empty (rank 0) writes the predictions there.
  ojson evaluate(const std::string& split, const std::string& out_stem, bool rerank);

  void evaluate_retrieval(const TaskRecords& data, const std::string& out_stem, bool rerank, ojson& m);

  // ---- the loop ----

  void log_metrics(const ojson& j);

  // Writes RUN/best/ atomically: the bundle with its answers and tokenizer.
  void save_best();

  void validate(double loss);

  int train();

  // The final bundle in the run dir and the predictions of the chosen model.
  void finish();
};

}  // namespace eve::train
