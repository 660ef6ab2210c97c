// eve-finetune: fine-tuning an EVE model on VQA, NLVR2 or image-text retrieval and writing
// predictions in the official formats (docs/architecture.md, "Fine-tuning and retrieval
// evaluation"). Torch-free header: the
// program's main fills FinetuneOptions and calls run_finetune.
//
// A task recipe (share/eve/tasks/<name>.json, or any JSON file with the same keys) gives
// the official hyper-parameters; every flag that is set overrides its recipe value.
//
// Tasks, on records written by eve-prep and encoded by eve-tokenize:
//   vqa        {"question_id","image","ids","answers":[10 strings]}: the pooled vl vector
//              (first text token) -> the `output` head over the answer vocabulary; soft
//              targets from the human answers (a count c of annotators scores min(1, 0.3 c),
//              i.e. 0, .3, .6, .9, 1; records with "dataset": "vg" or a single answer score
//              1); loss = BCE-with-logits (mean) x answers. Answer vocabulary: --answers FILE
//              (a JSON list), the --model bundle's answers.json when it has one and
//              --num-answers is not given, else the num_answers most frequent training
//              answers (ties by text). A classifier trained on another answer list, or an
//              NLVR2 head (the same `output` name), is not loaded: it starts fresh.
//              Predictions: [{"question_id", "answer"}] (argmax).
//   nlvr2      {"identifier","images":[left,right],"ids","label":"True"|"False"}: two vl
//              passes (left image + sentence, right image + sentence); the pair head on the
//              concatenated pooled vectors, or the bi-attention head (head "biattn");
//              cross-entropy + moe_lossweight x aux. Predictions: CSV identifier,True|False.
//   retrieval  {"image","ids_list":[...]}: one training sample per caption, captions of one
//              image share a positive set; ITC + ITM with hard negatives (contrastive.h).
//              Evaluation embeds every image and text of the split, scores all pairs by
//              ITC, and (k_test > 0) re-ranks each query's top k_test candidates by the ITM
//              match logit, others -100. Writes <split>.i2t.npy / .t2i.npy (images x texts,
//              texts x images, rows in record order, texts image by image) and top-10
//              rank lists (ids: the image key, "<key>#<k>" for texts, as eve-embed and
//              eve-score use them).
//   probe      no fine-tuning: a linear probe of the --model bundle's frozen vision backbone
//              on a labels file (probe.h); FinetuneOptions::probe holds its own flags.
// The aux loss is left out of the VQA loss only with compat "official" (the released code
// computes it but never adds it).
//
// The run dir:
//   checkpoint-<step>/   resumable checkpoints (checkpoint.h); a rerun resumes
//   best/                the bundle with the best validation metric (VQA accuracy, NLVR2
//                        accuracy, retrieval mean recall), chosen on the validation split only
//   config.json, model.safetensors, answers.json, tokenizer.model
//                        the final bundle = best/ (or the last model without validation),
//                        ready for eve-embed, eve-rank and --eval-only
//   metrics.jsonl        training lines {"step","loss",...} and evaluation lines
//                        {"step","eval":{"split",...metrics}}
//   predictions/<split>.json | .csv | .i2t.npy ...  predictions of the best model
//   results.json         the metrics of every predicted split that has labels
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "eve/core/cli.h"
#include "eve/train/trainer_options.h"
#include "eve/train/probe.h"

namespace eve::train {

// TrainerOptions holds what eve-pretrain shares: the bundle to start from (init: pre-trained,
// or fine-tuned for eval_only and probe), config and tokenizer (needed without init), the run
// dir, accumulation, gradient checkpointing, checkpoint cadence (save_every 0: at every
// validation and at the end) and the distributed launch.
struct FinetuneOptions : TrainerOptions {
  std::string task;                    // vqa | nlvr2 | retrieval | probe
  ProbeOptions probe;                  // probe: its own flags (init, out, batch size shared)
  std::string recipe;                  // name in share/eve/tasks or a JSON file; "" = the task's
  std::string data;                    // dataset dir
  std::vector<std::string> train = {"train.ids"};  // records files <data>/<split>.jsonl
  std::optional<std::string> val;      // unset: the recipe's (val.ids; dev.ids for nlvr2); "none": no validation
  std::vector<std::string> predict;    // splits predicted with the final model
  bool eval_only = false;              // no training: init predicts the --predict splits

  std::string answers;                 // VQA answer list (JSON list of strings)
  std::optional<int> num_answers;      // VQA: vocabulary size from training answers
  std::optional<std::string> head;     // NLVR2: pair | biattn
  std::optional<int> k_test;           // retrieval re-rank depth (0 = ITC only)
  std::optional<int> image_res;        // 0: the model's own
  std::optional<int> batch_size;
  std::optional<double> epochs;
  std::optional<int64_t> max_steps;    // set and > 0: overrides epochs
  std::optional<double> lr, lr_mult, warmup, clip, weight_decay;
  std::optional<std::string> decay;
  std::optional<double> crop_scale_min;
  std::optional<bool> flip, rand_augment;

  int64_t eval_every = 0;              // steps between validations (0 = once per epoch)
  int eval_batch_size = 64;
};

// Runs fine-tuning and prediction; returns the exit code (0, or 128+signal after a checkpoint
// when interrupted). Throws eve::UsageError for bad options and eve::Error for bad inputs.
int run_finetune(const FinetuneOptions& options, const cli::CommonOptions& common);

// The recipe as JSON text after applying the options (what the run dir's trainer.json
// records); exposed for tests and --describe.
std::string resolved_recipe(const FinetuneOptions& options);

}  // namespace eve::train
