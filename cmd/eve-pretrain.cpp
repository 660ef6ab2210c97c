// eve-pretrain: Pre-train an EVE model by masked signal modeling (or the VLMo baseline)
#include <CLI/CLI.hpp>

#include "eve/core/cli.h"
#include "eve/model/runtime.h"
#include "eve/train/pretrain.h"

int main(int argc, char** argv) {
  CLI::App app{"Pre-train an EVE model by masked signal modeling (MIM + MLM + MoE aux loss), or by the "
               "VLMo-style ITC/ITM/MLM baseline and its image-only and text-only stages",
               "eve-pretrain"};
  eve::cli::CommonOptions common;
  eve::cli::add_common(app, common, eve::cli::kTorch, eve::model::build_info());
  eve::train::PretrainOptions o;
  const char* d = "Data and model";
  app.add_option("--data", o.data, "Dataset dir of caption pairs with token ids")->group(d);
  app.add_option("--split", o.split, "Records file <data>/<split>.jsonl")->capture_default_str()->group(d);
  app.add_option("--config", o.config, "Model preset or config.json")->capture_default_str()->group(d);
  app.add_option("--init", o.init, "Start from the weights of this bundle")->group(d);
  app.add_option("--tokenizer", o.tokenizer, "Tokenizer JSON (tok.json): vocabulary size and special ids")->group(d);
  app.add_option("-o,--out", o.run_dir, "Run dir: checkpoints, final bundle, metrics.jsonl")->group(d);
  app.add_option("--objective", o.objective,
                 "msm, or any of itc,itm,mlm (--stage vl); mim (--stage image); mlm (--stage text); "
                 "default: the stage's first")->group(d);
  app.add_option("--stage", o.stage, "vl (image-text pairs), image (images alone) or text (token ids alone)")
      ->capture_default_str()->group(d);
  app.add_option("--freeze", o.freeze, "Keep parameters whose name matches this glob fixed (repeatable)")
      ->group(d);
  const char* t = "Optimisation";
  app.add_option("--batch-size", o.batch_size, "Global samples per optimiser step")->capture_default_str()->group(t);
  app.add_option("--accumulate", o.accumulate, "Micro-batches per step")->capture_default_str()->group(t);
  app.add_option("--max-steps", o.max_steps, "Optimiser steps (0: use --epochs)")->capture_default_str()->group(t);
  app.add_option("--epochs", o.epochs, "Passes over the data when --max-steps is 0")->capture_default_str()->group(t);
  app.add_option("--lr", o.lr, "Peak learning rate")->capture_default_str()->group(t);
  app.add_option("--min-lr", o.min_lr, "Learning rate at the end of the decay")->capture_default_str()->group(t);
  app.add_option("--warmup", o.warmup, "Warm-up: fraction of the steps (< 1) or steps")->capture_default_str()->group(t);
  app.add_option("--decay", o.decay, "cosine, linear or constant")->capture_default_str()->group(t);
  app.add_option("--weight-decay", o.weight_decay, "AdamW weight decay")->capture_default_str()->group(t);
  app.add_option("--beta2", o.beta2, "AdamW beta2")->capture_default_str()->group(t);
  app.add_option("--clip", o.clip, "Max gradient norm (0: off)")->capture_default_str()->group(t);
  app.add_flag("--grad-checkpoint", o.grad_checkpoint,
               "Recompute each encoder layer's activations in backward: less memory, more time")
      ->group(t);
  const char* m = "Objectives";
  app.add_option("--image-mask-ratio", o.image_mask_ratio, "Fraction of patches masked")->capture_default_str()->group(m);
  app.add_option("--text-mask-ratio", o.text_mask_ratio, "Fraction of tokens masked")->capture_default_str()->group(m);
  app.add_option("--mim-weight", o.mim_weight, "Weight of the MIM loss")->capture_default_str()->group(m);
  app.add_option("--mlm-weight", o.mlm_weight, "Weight of the MLM loss")->capture_default_str()->group(m);
  app.add_option("--itc-weight", o.itc_weight, "Weight of the ITC loss (--objective itc)")
      ->capture_default_str()->group(m);
  app.add_option("--itm-weight", o.itm_weight, "Weight of the ITM loss (--objective itm)")
      ->capture_default_str()->group(m);
  app.add_option("--crop-scale-min", o.crop_scale_min, "Smallest random-crop area fraction")->capture_default_str()->group(m);
  app.add_flag("!--no-flip", o.flip, "No random horizontal flip")->group(m);
  app.add_flag("--rand-augment", o.rand_augment, "RandAugment (2 ops, magnitude 7)")->group(m);
  const char* c = "Checkpoints";
  app.add_option("--save-every", o.save_every, "Checkpoint every N steps (0: at the end)")->capture_default_str()->group(c);
  app.add_option("--keep", o.keep, "Checkpoints kept")->capture_default_str()->group(c);
  app.add_flag("--resume", o.resume, "Continue the run in --out (automatic when it holds a checkpoint)")->group(c);
  app.add_option("--log-every", o.log_every, "metrics.jsonl line every N steps")->capture_default_str()->group(c);
  app.add_option("--prefetch", o.prefetch, "Micro-batches decoded ahead")->capture_default_str()->group(c);
  const char* x = "Distributed";
  app.add_option("--nproc-per-node", o.nproc_per_node, "Start N local workers (one per GPU with NCCL on --device cuda, else Gloo on loopback)")->group(x);
  app.add_option("--dist-timeout", o.dist_timeout, "Seconds a rendezvous or collective may wait")
      ->capture_default_str()->group(x);
  return eve::cli::run(app, argc, argv, common, [&]() -> int { return eve::train::run_pretrain(o, common); });
}
