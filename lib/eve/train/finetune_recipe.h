// eve-finetune's task recipes: the official hyper-parameters of a task (share/eve/tasks/<name>.json,
// or any JSON file with the same keys) with every flag that was given applied over them, and
// what follows from the task (its heads, the metric that picks the best model).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "eve/train/finetune.h"
#include "eve/train/finetune_data.h"

namespace eve::train {

struct Recipe {
  std::string name, path, task, decay, head, val;
  // Where val and image_res came from, and how to change them, for messages.
  std::string val_origin, image_res_origin;
  int image_res = 0, batch_size = 0, num_answers = 0, k_test = 0;
  double epochs = 0, lr = 0, lr_mult = 1, warmup = 0, clip = 0, weight_decay = 0, crop_scale_min = 0.5;
  bool flip = false, rand_augment = false;
};

// The recipe of options.task (or options.recipe) with the options applied; throws UsageError for
// values out of range or a recipe of another task, eve::Error for an unreadable recipe.
Recipe resolve_recipe(const FinetuneOptions& options);
// What trainer.json and results.json record of it.
nlohmann::ordered_json recipe_json(const Recipe& r);
// The model heads the task trains.
std::vector<std::string> task_heads(Task task, const Recipe& r);
// The validation metric the best model is chosen by.
const char* main_metric(Task task);

}  // namespace eve::train
