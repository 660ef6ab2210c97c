// eve-pretrain: pre-training an EVE model by masked signal modeling (docs/architecture.md,
// "Pre-training: masked signal modeling"), or by the VLMo-style baseline it is compared
// with, or by VLMo's stagewise recipe.
// Torch-free header: the program's main fills PretrainOptions and calls run_pretrain.
//
// Objective "msm" (the default of --stage vl) per micro-batch of image-text pairs:
//   MIM: the encoder sees the visible patches (a random image_mask_ratio of the patches is
//        dropped, position embeddings added before the drop) and the complete text; the
//        model's light decoder (config mim_decoder) predicts the pixels of every patch; MSE
//        over the masked patches only, against per-patch normalised pixels when the config's
//        mim_norm_target is true (MAE), else the raw [-1, 1] pixels.
//   MLM: the complete image and the text with text_mask_ratio of its real tokens (never
//        CLS, SEP or pads) chosen; 80% become [MASK], 10% a random non-special token, 10%
//        stay; cross-entropy over the chosen positions only.
//   loss = mim_weight * MIM + mlm_weight * MLM + moe_lossweight * aux (GShard loss averaged
//   over both passes).
//
// Objective "itc,itm,mlm" (any non-empty subset, any order; --stage vl), the VLMo baseline:
//   ITC and ITM as retrieval fine-tuning computes them (contrastive.h): features gathered over
//   all ranks, learned temperature, every caption of one image a positive (groups = image
//   key), one hard negative text per image and one negative image per text sampled from the
//   ITC similarities; ITM alone still uses the itc heads to sample its negatives (the ITC
//   loss then has weight 0). MLM as in msm, on the complete image and the masked text.
//   loss = itc_weight * ITC + itm_weight * ITM + mlm_weight * MLM
//          + moe_lossweight * (aux of the ITC/ITM passes, averaged) + moe_lossweight * aux of
//          the MLM pass.
//   Heads: itc (ITC or ITM), itm (ITM), mlm (MLM): the bundle of itc,... embeds with eve-embed.
//
// Stages (VLMo's stagewise pre-training):
//   vl     image-text pairs: --objective msm (default) or a subset of itc,itm,mlm.
//   image  --objective mim (the default; nothing else): MIM on images alone, a vision-mode
//          pass over the visible patches, decoder and loss as in msm; records of the pairs
//          dataset are read for their "image" only. Heads: mim.
//   text   --objective mlm (the default; nothing else): MLM in text mode on token ids alone;
//          records need "ids" (or "ids_list") and may lack an image. Heads: mlm.
//   Parameters that a stage does not use get zero gradients (and still take weight decay);
//   --freeze keeps them exactly as they are.
//
// --freeze PATTERN (repeatable): parameters whose name (the official state-dict key) matches
// the glob (`*` any run of characters, dots included; `?` one character) get no gradient and
// no optimiser update (no weight decay either); a pattern that matches nothing is a usage
// error.
//
// Randomness is a pure function of the seed: the data order of (seed, epoch), the
// augmentation of (seed, epoch, sample position), the masks of (seed, micro-batch, sample
// position), and torch's generator (dropout, drop-path, routing noise) is reseeded from
// (seed, step, rank) before every step. That is what makes a resumed run continue exactly.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "eve/core/cli.h"
#include "eve/train/trainer_options.h"

namespace eve::train {

// TrainerOptions holds what eve-finetune shares: the bundle (init), config, tokenizer, run dir,
// accumulation, gradient checkpointing, checkpoint cadence and the distributed launch. The
// config is ignored on resume.
struct PretrainOptions : TrainerOptions {
  // Data and objective.
  std::string data;                 // dataset dir (eve-prep + eve-tokenize encode)
  std::string split = "train";      // records file <data>/<split>.jsonl
  std::string objective;             // "" = the stage's default (vl: msm, image: mim, text: mlm)
  std::string stage = "vl";         // vl | image | text
  std::vector<std::string> freeze;  // glob patterns of parameter names kept fixed

  // Optimisation.
  int batch_size = 32;              // global batch per optimiser step (all ranks, all micro-batches)
  int64_t max_steps = 0;            // 0 = use --epochs
  double epochs = 1;
  double lr = 1.5e-4;
  double min_lr = 0.0;
  double warmup = 0.1;              // < 1: fraction of the steps; >= 1: steps
  std::string decay = "cosine";     // cosine | linear | constant
  double weight_decay = 0.01;
  double beta1 = 0.9, beta2 = 0.98, eps = 1e-8;
  double clip = 1.0;                // max global gradient norm; 0 = off

  // Objective.
  double image_mask_ratio = 0.75;
  double text_mask_ratio = 0.15;
  double mim_weight = 1.0;
  double mlm_weight = 1.0;
  double itc_weight = 1.0;
  double itm_weight = 1.0;

  // Images.
  double crop_scale_min = 0.5;
  bool flip = true;
  bool rand_augment = false;
};

// What --objective and --stage select.
struct Objective {
  std::string stage = "vl";
  bool mim = false, mlm = false, itc = false, itm = false;
  bool msm() const { return stage == "vl" && mim && mlm; }
  bool contrastive() const { return itc || itm; }
  // Canonical name: "msm", "mim", "mlm" or the parts in the order itc, itm, mlm.
  std::string name() const;
  // Model heads the objective trains: {"mlm","mim"}, {"mim"}, {"mlm"} or those of itc/itm/mlm.
  std::vector<std::string> heads() const;
};

// Parses --objective ("" = the stage's default) for --stage; throws eve::UsageError naming
// what is wrong (unknown stage or part, msm combined with others, a part given twice, an
// objective the stage cannot train).
Objective parse_objective(const std::string& objective, const std::string& stage);

// Glob match of a whole name: `*` any run of characters (dots included), `?` one character,
// every other character itself.
bool glob_match(const std::string& pattern, const std::string& name);

// Runs the whole pre-training; returns the exit code (0, or 128+signal after a checkpoint
// when interrupted). Throws eve::UsageError for bad options and eve::Error for bad inputs.
int run_pretrain(const PretrainOptions& options, const cli::CommonOptions& common);

}  // namespace eve::train
