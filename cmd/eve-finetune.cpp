// eve-finetune: Fine-tune an EVE bundle on VQA, NLVR2 or retrieval
#include <CLI/CLI.hpp>

#include <iostream>

#include "eve/core/cli.h"
#include "eve/model/runtime.h"
#include "eve/train/finetune.h"

int main(int argc, char** argv) {
  CLI::App app{"Fine-tune an EVE bundle on VQA, NLVR2 or image-text retrieval; write predictions in the official "
               "formats",
               "eve-finetune"};
  eve::cli::CommonOptions common;
  eve::cli::add_common(app, common, eve::cli::kTorch, eve::model::build_info());
  eve::train::FinetuneOptions o;
  bool show_recipe = false;
  const char* d = "Task, data and model";
  app.add_option("--task", o.task, "vqa, nlvr2, retrieval, or probe (a linear probe of the --init backbone)")
      ->group(d);
  app.add_option("--recipe", o.recipe, "Task recipe: a name in share/eve/tasks or a JSON file (default: the task's)")
      ->group(d);
  app.add_flag("--show-recipe", show_recipe, "Print the recipe with the flags applied and exit")->group(d);
  app.add_option("--data", o.data, "Dataset dir of the task (eve-prep + eve-tokenize encode)")->group(d);
  app.add_option("--train", o.train, "Training records <data>/<split>.jsonl (repeatable)")
      ->capture_default_str()->group(d);
  app.add_option("--val", o.val, "Validation split that picks the best model (none: no validation)")->group(d);
  app.add_option("--predict", o.predict, "Splits predicted by the final model (repeatable)")->group(d);
  app.add_option("--init", o.init, "Bundle to start from (pre-trained, or fine-tuned for --eval-only)")->group(d);
  app.add_option("--config", o.config, "Model preset or config.json when there is no --init")
      ->capture_default_str()->group(d);
  app.add_option("--tokenizer", o.tokenizer, "Tokenizer JSON (tok.json), needed without --init")->group(d);
  app.add_option("-o,--out", o.run_dir, "Run dir: checkpoints, best and final bundle, predictions, metrics")->group(d);
  app.add_flag("--eval-only", o.eval_only, "No training: predict the --predict splits with the --init bundle")->group(d);
  const char* k = "Task heads";
  app.add_option("--answers", o.answers, "VQA answer list (JSON list of strings)")->group(k);
  app.add_option("--num-answers", o.num_answers, "VQA: the N most frequent training answers (recipe: 3128); given, it also replaces the --init bundle's answers.json")->group(k);
  app.add_option("--head", o.head, "NLVR2 head: pair or biattn")->group(k);
  app.add_option("--k-test", o.k_test, "Retrieval: candidates re-ranked by ITM per query (0: ITC only)")->group(k);
  const char* t = "Recipe overrides";
  app.add_option("--image-res", o.image_res, "Image side in pixels (position table resized)")->group(t);
  app.add_option("--batch-size", o.batch_size, "Global samples per optimiser step")->group(t);
  app.add_option("--accumulate", o.accumulate, "Micro-batches per step")->capture_default_str()->group(t);
  app.add_option("--epochs", o.epochs, "Passes over the training data")->group(t);
  app.add_option("--max-steps", o.max_steps, "Optimiser steps (overrides --epochs)")->group(t);
  app.add_option("--lr", o.lr, "Peak learning rate")->group(t);
  app.add_option("--lr-mult", o.lr_mult, "Learning-rate multiplier of newly initialised heads")->group(t);
  app.add_option("--warmup", o.warmup, "Warm-up: fraction of the steps (< 1) or steps")->group(t);
  app.add_option("--decay", o.decay, "cosine, linear or constant")->group(t);
  app.add_option("--clip", o.clip, "Max gradient norm (0: off)")->group(t);
  app.add_option("--weight-decay", o.weight_decay, "AdamW weight decay")->group(t);
  app.add_option("--crop-scale-min", o.crop_scale_min, "Smallest random-crop area fraction")->group(t);
  app.add_option("--flip", o.flip, "Random horizontal flip: 1 on, 0 off")->group(t);
  app.add_option("--rand-augment", o.rand_augment, "RandAugment: 1 on, 0 off")->group(t);
  app.add_flag("--grad-checkpoint", o.grad_checkpoint,
               "Recompute each encoder layer's activations in backward: less memory, more time")
      ->group(t);
  const char* c = "Evaluation and checkpoints";
  app.add_option("--eval-every", o.eval_every, "Steps between validations (0: once per epoch)")
      ->capture_default_str()->group(c);
  app.add_option("--eval-batch-size", o.eval_batch_size,
                 "Examples per evaluation batch (retrieval: images per pass; with a compat official "
                 "model texts go 256 at a time and each query's --k-test candidates form one "
                 "re-rank batch, as the released evaluation)")
      ->capture_default_str()->group(c);
  app.add_option("--save-every", o.save_every, "Checkpoint every N steps (0: at each validation)")
      ->capture_default_str()->group(c);
  app.add_option("--keep", o.keep, "Checkpoints kept")->capture_default_str()->group(c);
  app.add_flag("--resume", o.resume, "Continue the run in --out (automatic when it holds a checkpoint)")->group(c);
  app.add_option("--log-every", o.log_every, "metrics.jsonl line every N steps")->capture_default_str()->group(c);
  app.add_option("--prefetch", o.prefetch, "Micro-batches decoded ahead")->capture_default_str()->group(c);
  const char* p = "Linear probe (--task probe; also --init, --out, --batch-size)";
  app.add_option("--labels", o.probe.labels, "Labels JSONL: id, image, split and the probed fields per record")
      ->group(p);
  app.add_option("--images", o.probe.images, "Root the records' image paths are relative to")->group(p);
  app.add_option("--field", o.probe.fields, "Field probed (repeatable): a class per record, or a list of values")
      ->group(p);
  app.add_option("--features", o.probe.features, "Pooled vision features: cls, mean (of the patches) or both")
      ->capture_default_str()->group(p);
  app.add_option("--baseline", o.probe.baseline, "fresh: the same probe on a new model of the config (--seed)")
      ->group(p);
  app.add_option("--holdout", o.probe.holdout, "Fraction of the records held out for scoring")
      ->capture_default_str()->group(p);
  app.add_option("--split", o.probe.splits, "Keep only records whose split is one of these (repeatable)")->group(p);
  const char* x = "Distributed";
  app.add_option("--nproc-per-node", o.nproc_per_node, "Start N local workers (one per GPU with NCCL on --device cuda, else Gloo on loopback)")->group(x);
  app.add_option("--dist-timeout", o.dist_timeout, "Seconds a rendezvous or collective may wait")
      ->capture_default_str()->group(x);
  return eve::cli::run(app, argc, argv, common, [&]() -> int {
    if (show_recipe) {
      std::cout << eve::train::resolved_recipe(o);
      return 0;
    }
    return eve::train::run_finetune(o, common);
  });
}
