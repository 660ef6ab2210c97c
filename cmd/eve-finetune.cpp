// eve-finetune: Fine-tune an EVE bundle on VQA, NLVR2 or retrieval
#include <CLI/CLI.hpp>

#include <iostream>

#include "eve/core/cli.h"
#include "eve/model/runtime.h"
#include "eve/train/finetune.h"
#include "eve/train/trainer_options.h"

int main(int argc, char** argv) {
  CLI::App app{"Fine-tune an EVE bundle on VQA, NLVR2 or image-text retrieval; write predictions in the official "
               "formats",
               "eve-finetune"};
  eve::cli::CommonOptions common;
  eve::cli::add_common(app, common, eve::cli::kTorch, eve::model::build_info());
  eve::train::FinetuneOptions o;
  bool show_recipe = false;
  const char* d = "Task and data";
  app.add_option("--task", o.task, "vqa, nlvr2, retrieval, or probe (a linear probe of the --model backbone)")
      ->group(d);
  app.add_option("--recipe", o.recipe, "Task recipe: a name in share/eve/tasks or a JSON file (default: the task's)")
      ->group(d);
  app.add_flag("--show-recipe", show_recipe, "Print the recipe with the flags applied and exit")->group(d);
  app.add_option("--data", o.data, "Dataset dir of the task (eve-prep + eve-tokenize encode)")->group(d);
  app.add_option("--train", o.train, "Training records <data>/<split>.jsonl (repeatable)")
      ->capture_default_str()->group(d);
  app.add_option("--val", o.val, "Validation split that picks the best model (none: no validation)")->group(d);
  app.add_option("--predict", o.predict, "Splits predicted by the final model (repeatable)")->group(d);
  app.add_flag("--eval-only", o.eval_only, "No training: predict the --predict splits with the --model bundle")
      ->group(d);
  const char* k = "Task heads";
  app.add_option("--answers", o.answers, "VQA answer list (JSON list of strings)")->group(k);
  app.add_option("--num-answers", o.num_answers, "VQA: the N most frequent training answers (recipe: 3128); given, it also replaces the --model bundle's answers.json")->group(k);
  app.add_option("--head", o.head, "NLVR2 head: pair or biattn")->group(k);
  app.add_option("--k-test", o.k_test, "Retrieval: candidates re-ranked by ITM per query (0: ITC only)")->group(k);
  eve::train::add_model_flags(app, o);
  // Unset optimisation and augmentation flags take the task recipe's values (--show-recipe).
  eve::train::add_optimisation_flags(app, o);
  const char* t = eve::train::kOptimGroup;
  app.add_option("--lr-mult", o.lr_mult, "Learning-rate multiplier of newly initialised heads")->group(t);
  app.add_option("--image-res", o.image_res, "Image side in pixels (position table resized)")->group(t);
  const char* c = "Evaluation";
  app.add_option("--eval-every", o.eval_every, "Steps between validations (0: once per epoch)")
      ->capture_default_str()->group(c);
  app.add_option("--eval-batch-size", o.eval_batch_size,
                 "Examples per evaluation batch (retrieval: images per pass; with a compat official "
                 "model texts go 256 at a time and each query's --k-test candidates form one "
                 "re-rank batch, as the released evaluation)")
      ->capture_default_str()->group(c);
  eve::train::add_run_flags(app, o, "at each validation and at the end");
  const char* p = "Linear probe (--task probe; also --model, --out, --batch-size)";
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
  return eve::cli::run(app, argc, argv, common, [&]() -> int {
    if (show_recipe) {
      std::cout << eve::train::resolved_recipe(o);
      return 0;
    }
    return eve::train::run_finetune(o, common);
  });
}
