#include "eve/train/finetune_recipe.h"

#include <set>

#include "eve/core/error.h"
#include "eve/core/paths.h"
#include "eve/io/jsonl.h"

namespace eve::train {

using ojson = nlohmann::ordered_json;

namespace {

const std::set<std::string> kRecipeKeys{"task", "description", "image_res", "epochs", "batch_size", "lr", "lr_mult",
                                        "warmup", "decay", "clip", "weight_decay", "num_answers", "head", "k_test",
                                        "crop_scale_min", "flip", "rand_augment", "val"};

}  // namespace

Recipe resolve_recipe(const FinetuneOptions& o) {
  const Task task = parse_task(o.task);
  Recipe r;
  r.name = o.recipe.empty() ? (task == Task::retrieval ? "retrieval-coco" : o.task) : o.recipe;
  r.path = resolve_share_file("tasks", r.name, ".json");
  io::json j = io::read_json(r.path);
  if (!j.is_object()) throw Error("a task recipe must be a JSON object", r.path);
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!kRecipeKeys.count(it.key()))
      throw Error("unknown recipe key \"" + it.key() + "\"", r.path, {},
                  "keys: task, image_res, epochs, batch_size, lr, lr_mult, warmup, decay, clip, weight_decay, "
                  "num_answers, head, k_test, crop_scale_min, flip, rand_augment, val");
  auto get = [&](const char* key, auto fallback) {
    using T = decltype(fallback);
    if (!j.contains(key)) return fallback;
    try {
      return j[key].get<T>();
    } catch (const std::exception&) {
      throw Error(std::string("recipe key \"") + key + "\" has the wrong type", r.path);
    }
  };
  r.task = get("task", o.task);
  if (r.task != o.task)
    throw UsageError("recipe " + r.path + " is for task " + r.task + ", not " + o.task);
  // A value given on the command line, else the recipe's, else eve's default.
  auto pick = [&](const auto& given, const char* key, auto fallback) {
    using T = decltype(fallback);
    return given ? static_cast<T>(*given) : get(key, fallback);
  };
  r.image_res = pick(o.image_res, "image_res", 0);
  r.batch_size = pick(o.batch_size, "batch_size", 32);
  r.epochs = pick(o.epochs, "epochs", 10.0);
  r.lr = pick(o.lr, "lr", 3e-5);
  r.lr_mult = pick(o.lr_mult, "lr_mult", 1.0);
  r.warmup = pick(o.warmup, "warmup", 0.1);
  r.decay = pick(o.decay, "decay", std::string("linear"));
  r.clip = pick(o.clip, "clip", 1.0);
  r.weight_decay = pick(o.weight_decay, "weight_decay", 0.01);
  r.num_answers = pick(o.num_answers, "num_answers", 3128);
  r.head = pick(o.head, "head", std::string("pair"));
  r.k_test = pick(o.k_test, "k_test", 128);
  r.crop_scale_min = pick(o.crop_scale_min, "crop_scale_min", 0.5);
  r.flip = pick(o.flip, "flip", false);
  r.rand_augment = pick(o.rand_augment, "rand_augment", false);
  r.val = pick(o.val, "val", std::string(task == Task::nlvr2 ? "dev.ids" : "val.ids"));
  const std::string recipe_of = o.recipe.empty() || o.recipe.find_first_of("/.") == std::string::npos
                                    ? "the " + r.name + " recipe (" + r.path + ")"
                                    : "the recipe " + r.path;
  const std::string other_val = "; give --val SPLIT to validate on another split, or --val none to train without "
                                "validation";
  r.val_origin = o.val               ? "given by --val" + other_val
                 : j.contains("val") ? "the validation split " + r.val + " is the default of " + recipe_of
                                     : "the validation split " + r.val + " is the default of --task " + o.task;
  if (!o.val) r.val_origin += other_val;
  r.image_res_origin = o.image_res ? (r.image_res > 0 ? "--image-res " + std::to_string(r.image_res)
                                                      : std::string("the model's image_res, as --image-res 0 asks"))
                       : r.image_res > 0 ? "image_res " + std::to_string(r.image_res) + " of " + recipe_of +
                                               ", as --image-res was not given"
                                         : "the model's image_res, as --image-res was not given";

  auto bad = [](const std::string& m) { throw UsageError(m); };
  if (r.batch_size < 1) bad("--batch-size must be at least 1");
  if (o.max_steps && *o.max_steps < 0) bad("--max-steps must be >= 0 (0: --epochs decides)");
  if (r.warmup < 0 || r.clip < 0 || r.weight_decay < 0) bad("--warmup, --clip and --weight-decay must be >= 0");
  if (o.accumulate < 1 || r.batch_size % o.accumulate != 0)
    bad("--accumulate must be at least 1 and divide --batch-size");
  if (!(r.epochs > 0) || !(r.lr > 0) || !(r.lr_mult > 0)) bad("--epochs, --lr and --lr-mult must be > 0");
  if (r.decay != "cosine" && r.decay != "linear" && r.decay != "constant")
    bad("--decay " + r.decay + ": expected cosine, linear or constant");
  if (r.head != "pair" && r.head != "biattn") bad("--head " + r.head + ": expected pair or biattn");
  if (r.image_res < 0 || r.num_answers < 1 || r.k_test < 0) bad("--image-res, --num-answers and --k-test must be >= 0");
  if (!(r.crop_scale_min > 0 && r.crop_scale_min <= 1)) bad("--crop-scale-min must be in (0, 1]");
  if (o.eval_every < 0 || o.save_every < 0 || o.keep < 1 || o.log_every < 1 ||
      o.eval_batch_size < 1)
    bad("--eval-every, --save-every >= 0; --keep, --log-every, --eval-batch-size >= 1");
  return r;
}

ojson recipe_json(const Recipe& r) {
  return ojson{{"recipe", r.name},       {"task", r.task},         {"image_res", r.image_res},
               {"epochs", r.epochs},     {"batch_size", r.batch_size}, {"lr", r.lr},
               {"lr_mult", r.lr_mult},   {"warmup", r.warmup},     {"decay", r.decay},
               {"clip", r.clip},         {"weight_decay", r.weight_decay}, {"num_answers", r.num_answers},
               {"head", r.head},         {"k_test", r.k_test},     {"crop_scale_min", r.crop_scale_min},
               {"flip", r.flip},         {"rand_augment", r.rand_augment}, {"val", r.val}};
}

std::vector<std::string> task_heads(Task task, const Recipe& r) {
  switch (task) {
    case Task::vqa: return {"vqa"};
    case Task::nlvr2: return {r.head == "biattn" ? "nlvr2_biattn" : "nlvr2"};
    case Task::retrieval: return {"itc", "itm"};
  }
  return {};
}

const char* main_metric(Task task) { return task == Task::retrieval ? "r_mean" : "accuracy"; }

}  // namespace eve::train
