#include "eve/train/finetune.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <unordered_map>

#include "eve/core/error.h"
#include "eve/core/log.h"
#include "eve/core/paths.h"
#include "eve/core/rng.h"
#include "eve/core/threads.h"
#include "eve/eval/retrieval_eval.h"
#include "eve/eval/vqa_eval.h"
#include "eve/io/file.h"
#include "eve/io/jsonl.h"
#include "eve/io/npy.h"
#include "eve/model/bundle.h"
#include "eve/model/op_census.h"
#include "eve/model/retrieval_encoder.h"
#include "eve/model/runtime.h"
#include "eve/train/checkpoint.h"
#include "eve/train/contrastive.h"
#include "eve/train/distributed.h"
#include "eve/train/finetune_data.h"
#include "eve/train/loader.h"
#include "eve/train/optim.h"
#include "eve/train/run_common.h"
#include "eve/train/step_loop.h"

namespace eve::train {

namespace fs = std::filesystem;
namespace F = torch::nn::functional;
using ojson = nlohmann::ordered_json;
using torch::Tensor;

namespace {

constexpr uint64_t kNegativeStream = 0x6e65676174ull;  // "negat": ITM hard negatives

struct Recipe {
  std::string name, path, task, decay, head, val;
  // Where val and image_res came from, and how to change them, for messages.
  std::string val_origin, image_res_origin;
  int image_res = 0, batch_size = 0, num_answers = 0, k_test = 0;
  double epochs = 0, lr = 0, lr_mult = 1, warmup = 0, clip = 0, weight_decay = 0, crop_scale_min = 0.5;
  bool flip = false, rand_augment = false;
};

const std::set<std::string> kRecipeKeys{"task", "description", "image_res", "epochs", "batch_size", "lr", "lr_mult",
                                        "warmup", "decay", "clip", "weight_decay", "num_answers", "head", "k_test",
                                        "crop_scale_min", "flip", "rand_augment", "val"};

Recipe resolve(const FinetuneOptions& o) {
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
  r.image_res = o.image_res > 0 ? o.image_res : get("image_res", 0);
  r.batch_size = o.batch_size > 0 ? o.batch_size : get("batch_size", 32);
  r.epochs = o.epochs > 0 ? o.epochs : get("epochs", 10.0);
  r.lr = o.lr > 0 ? o.lr : get("lr", 3e-5);
  r.lr_mult = o.lr_mult > 0 ? o.lr_mult : get("lr_mult", 1.0);
  r.warmup = o.warmup >= 0 ? o.warmup : get("warmup", 0.1);
  r.decay = !o.decay.empty() ? o.decay : get("decay", std::string("linear"));
  r.clip = o.clip >= 0 ? o.clip : get("clip", 1.0);
  r.weight_decay = o.weight_decay >= 0 ? o.weight_decay : get("weight_decay", 0.01);
  r.num_answers = o.num_answers > 0 ? o.num_answers : get("num_answers", 3128);
  r.head = !o.head.empty() ? o.head : get("head", std::string("pair"));
  r.k_test = o.k_test >= 0 ? o.k_test : get("k_test", 128);
  r.crop_scale_min = o.crop_scale_min > 0 ? o.crop_scale_min : get("crop_scale_min", 0.5);
  r.flip = o.flip >= 0 ? o.flip != 0 : get("flip", false);
  r.rand_augment = o.rand_augment >= 0 ? o.rand_augment != 0 : get("rand_augment", false);
  r.val = !o.val.empty() ? o.val : get("val", std::string(task == Task::nlvr2 ? "dev.ids" : "val.ids"));
  const std::string recipe_of = o.recipe.empty() || o.recipe.find_first_of("/.") == std::string::npos
                                    ? "the " + r.name + " recipe (" + r.path + ")"
                                    : "the recipe " + r.path;
  const std::string other_val = "; give --val SPLIT to validate on another split, or --val none to train without "
                                "validation";
  r.val_origin = !o.val.empty()      ? "given by --val" + other_val
                 : j.contains("val") ? "the validation split " + r.val + " is the default of " + recipe_of
                                     : "the validation split " + r.val + " is the default of --task " + o.task;
  if (o.val.empty()) r.val_origin += other_val;
  r.image_res_origin = o.image_res > 0 ? "--image-res " + std::to_string(r.image_res)
                       : r.image_res > 0 ? "image_res " + std::to_string(r.image_res) + " of " + recipe_of +
                                               ", as --image-res was not given"
                                         : "the model's image_res, as --image-res was not given";

  auto bad = [](const std::string& m) { throw UsageError(m); };
  if (r.batch_size < 1) bad("--batch-size must be at least 1");
  if (o.accumulate < 1 || r.batch_size % o.accumulate != 0)
    bad("--accumulate must be at least 1 and divide --batch-size");
  if (!(r.epochs > 0) || !(r.lr > 0) || !(r.lr_mult > 0)) bad("--epochs, --lr and --lr-mult must be > 0");
  if (r.decay != "cosine" && r.decay != "linear" && r.decay != "constant")
    bad("--decay " + r.decay + ": expected cosine, linear or constant");
  if (r.head != "pair" && r.head != "biattn") bad("--head " + r.head + ": expected pair or biattn");
  if (r.image_res < 0 || r.num_answers < 1 || r.k_test < 0) bad("--image-res, --num-answers and --k-test must be >= 0");
  if (!(r.crop_scale_min > 0 && r.crop_scale_min <= 1)) bad("--crop-scale-min must be in (0, 1]");
  if (o.max_steps < 0 || o.eval_every < 0 || o.save_every < 0 || o.keep < 1 || o.log_every < 1 ||
      o.eval_batch_size < 1)
    bad("--max-steps, --eval-every, --save-every >= 0; --keep, --log-every, --eval-batch-size >= 1");
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

// The metric the best model is chosen by.
// Texts longer than the model takes are cut, never refused: said once per split read.
void warn_long_texts(const TaskRecords& d, int max_len, const std::string& split) {
  int64_t n = 0, total = 0;
  auto count = [&](const std::vector<int64_t>& ids) {
    ++total;
    n += static_cast<int64_t>(ids.size()) > max_len;
  };
  for (const auto& s : d.samples) if (!s.ids.empty()) count(s.ids);
  for (const auto& t : d.texts) count(t);
  if (n > 0)
    log::warn("{}: {} of {} texts are longer than the model's {} tokens and are cut to them", split, n,
              total, max_len);
}

const char* main_metric(Task task) { return task == Task::retrieval ? "r_mean" : "accuracy"; }

// Copies a directory's regular files into `to` (created), each atomically.
void copy_files(const fs::path& from, const fs::path& to, const std::vector<std::string>& names) {
  fs::create_directories(to);
  for (const auto& n : names)
    if (fs::exists(from / n)) io::write_file_atomic((to / n).string(), io::read_file((from / n).string()));
}

struct Finetuner {
  FinetuneOptions o;
  const cli::CommonOptions& common;
  Task task;
  Recipe r;
  DistEnv env;
  std::unique_ptr<ProcessGroup> pg;
  torch::Device device{torch::kCPU};
  nn::Precision precision = nn::Precision::fp32;
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
  std::string path(const std::string& name) const { return (fs::path(o.run_dir) / name).string(); }

  void load_model_from_init(bool keep_heads) {
    model::LoadOptions lo;
    lo.allow_partial = !keep_heads;
    lo.image_res = keep_heads ? o.image_res : r.image_res;
    if (!keep_heads) {
      lo.replace_heads = true;
      lo.heads = task_heads(task, r);
      if (task == Task::vqa) {
        lo.num_answers = static_cast<int>(answers.size());
        // A head trained on another answer list scores other labels: its classifier starts fresh.
        if (answers_source != AnswerSource::init) {
          const std::string init_answers = o.init + "/answers.json";
          if (io::file_exists(init_answers) && read_answers(init_answers) != answers)
            lo.fresh_prefixes.push_back("output.3.");
        }
      }
    }
    model::Bundle b = model::load_bundle(o.init, lo);
    model = b.model;
    config = b.config;
    for (const auto& s : b.report.initialised) new_params.push_back(s.substr(0, s.find(' ')));
    if (rank0()) {
      for (const auto& s : b.report.resized) log::info("position table resized: {}", s);
      log::info("{} parameter tensors newly initialised (learning rate x{}), {} ignored from {}",
                new_params.size(), r.lr_mult, b.report.ignored.size(), o.init);
      if (!b.tokenizer.empty()) copy_files(fs::path(o.init), o.run_dir, {"tokenizer.model"});
    }
  }

  // The VQA answer vocabulary of a new run.
  void choose_answers() {
    if (!o.answers.empty()) {
      answers = read_answers(o.answers);
      answers_source = AnswerSource::file;
    } else if (o.num_answers <= 0 && !o.init.empty() && io::file_exists(o.init + "/answers.json")) {
      answers = read_answers(o.init + "/answers.json");
      answers_source = AnswerSource::init;
    } else {
      answers = top_answers({&train_data}, r.num_answers);
      answers_source = AnswerSource::training;
    }
  }

  // Where the answer list came from, as the log names it.
  std::string answers_origin() const {
    switch (answers_source) {
      case AnswerSource::file: return o.answers;
      case AnswerSource::init: return o.init + "/answers.json";
      case AnswerSource::training: break;
    }
    return "the training split's most frequent answers";
  }

  void setup() {
    env = dist_env_from_environment();
    seed = common.seed;
    const std::string dev = nn::init_runtime(common);
    precision = nn::run_precision();
    device = training_device(dev, env);
    pg = std::make_unique<ProcessGroup>(env, o.dist_timeout, device);
    manifest = read_dataset_manifest(o.data);
    check_dataset_task();
    require_eval_splits();

    if (o.eval_only) {
      if (o.init.empty()) throw UsageError("--eval-only needs --init (a fine-tuned bundle)");
      if (o.predict.empty()) throw UsageError("--eval-only needs at least one --predict split");
      load_model_from_init(true);
      // An NLVR2 bundle carries one of the two heads: use the one it has unless --head says.
      if (task == Task::nlvr2 && o.head.empty() && config.has_head("nlvr2_biattn") && !config.has_head("nlvr2"))
        r.head = "biattn";
      for (const auto& h : task_heads(task, r))
        if (!config.has_head(h))
          throw UsageError("--init " + o.init + " has no " + h + " head", {}, {},
                           "fine-tune it for " + std::string(task_name(task)) + " first");
      if (task == Task::vqa) {
        if (!io::file_exists(o.init + "/answers.json")) throw Error("the VQA bundle has no answers.json", o.init);
        answers = read_answers(o.init + "/answers.json");
      }
      finish_model_setup();
      check_eval_splits();
      return;
    }

    const ResumePoint rp = find_resume_point(o.run_dir, o.resume, run_json(), {"task", "world_size", "batch_size", "accumulate"});
    const CheckpointRef& ck = rp.checkpoint;
    if (rp.found()) {
      const ojson& state = rp.state;
      seed = state["options"]["seed"].get<uint64_t>();
      model::Bundle b = model::load_bundle(ck.dir);
      model = b.model;
      config = b.config;
      st.step = state["step"].get<int64_t>();
      best_value = state.value("best_value", -1.0);
      best_step = state.value("best_step", int64_t{-1});
      new_params = state["lr_mult_params"].get<std::vector<std::string>>();
      if (task == Task::vqa) answers = read_answers(path("answers.json"));
      st.resumed_from = ck.dir;
      st.saved = st.step;
    }

    train_data = read_task_records(task, o.data, o.train.at(0), 0, true);
    for (size_t i = 1; i < o.train.size(); ++i) {
      TaskRecords more = read_task_records(task, o.data, o.train[i], 0, true);
      const int64_t offset = train_data.image_keys.size();
      for (auto& s : more.samples) train_data.samples.push_back(std::move(s));
      for (auto& a : more.human_answers) train_data.human_answers.push_back(std::move(a));
      train_data.from_vg.insert(train_data.from_vg.end(), more.from_vg.begin(), more.from_vg.end());
      train_data.labels.insert(train_data.labels.end(), more.labels.begin(), more.labels.end());
      for (int64_t g : more.groups) train_data.groups.push_back(g + offset);
      for (auto& k : more.image_keys) train_data.image_keys.push_back(std::move(k));
    }
    if (rank0()) warn_long_texts(train_data, config.max_text_len, "training");
    if (task == Task::retrieval) {
      // Captions of one image are positives of each other whichever split they come from.
      std::unordered_map<std::string, int64_t> group_of;
      for (size_t i = 0; i < train_data.samples.size(); ++i)
        train_data.groups[i] =
            group_of.emplace(train_data.samples[i].images[0], static_cast<int64_t>(group_of.size())).first->second;
    }

    if (ck.step < 0) {
      if (task == Task::vqa) choose_answers();
      if (!o.init.empty()) {
        load_model_from_init(false);
        if (!o.tokenizer.empty()) adopt_tokenizer(o.tokenizer, config, config.vocab_size, {});
      } else {
        if (o.tokenizer.empty())
          throw UsageError("--tokenizer is required without --init (the tok.json written beside the tokenizer model)");
        config = model::load_config(o.config);
        config.heads = task_heads(task, r);
        if (r.image_res > 0) config.image_res = r.image_res;
        if (task == Task::vqa) config.num_answers = static_cast<int>(answers.size());
        adopt_tokenizer(o.tokenizer, config, 0, rank0() ? o.run_dir : std::string());
        config.validate(o.config);
        model = model::EveModel(config);
        // From scratch every tensor is new; the heads keep their multiplier.
        for (auto& kv : model->named_parameters())
          if (kv.key().rfind("backbone.", 0) != 0) new_params.push_back(kv.key());
      }
      if (rank0() && task == Task::vqa) {
        fs::create_directories(o.run_dir);
        io::write_file_atomic(path("answers.json"), answers_json(answers));
      }
    }
    // Token ids must fit the model's vocabulary.
    for (const auto& s : train_data.samples)
      for (int64_t id : s.ids)
        if (id >= config.vocab_size)
          throw Error("token id " + std::to_string(id) + " is outside the model's vocabulary [0, " +
                          std::to_string(config.vocab_size) + ")",
                      s.where, {}, "encode the records with the tokenizer of the model");
    if (task == Task::vqa) {
      answer_ids = answer_index(answers);
      size_t none = 0;
      for (size_t i = 0; i < train_data.samples.size(); ++i) {
        targets.push_back(vqa_targets(train_data.human_answers[i], train_data.from_vg[i], answer_ids));
        none += targets.back().empty();
      }
      if (rank0()) {
        log::info("VQA: {} answers from {}; {} of {} training questions have no answer in the vocabulary",
                  answers.size(), answers_origin(), none, targets.size());
        // A bundle's list is kept by default; one made for other questions leaves most of these unlearnable.
        if (answers_source == AnswerSource::init && 2 * none > targets.size())
          log::warn("most training questions have no answer in {}: --num-answers N builds the list from the "
                    "training split instead",
                    answers_origin());
      }
    }
    finish_model_setup();

    LoaderOptions lo = training_loader_options(o.data, r.batch_size / o.accumulate, env.rank, env.world, seed, config,
                                               resolve_threads(common.threads), o.prefetch, r.crop_scale_min,
                                               r.flip, r.rand_augment);
    loader = std::make_unique<Loader>(train_data.samples, lo);
    check_eval_splits();
    if (rank0())
      warn_resolution(manifest, config.image_res,
                      st.resumed_from.empty() ? r.image_res_origin : "image_res of " + st.resumed_from,
                      "give --image-res " + std::to_string(manifest.short_side) + " to train at the data's size");

    const int64_t per_epoch = loader->batches_per_epoch();
    steps_per_epoch = std::max<int64_t>(1, per_epoch / o.accumulate);
    total = o.max_steps > 0 ? o.max_steps : std::max<int64_t>(1, static_cast<int64_t>(r.epochs * steps_per_epoch));
    eval_every = o.eval_every > 0 ? o.eval_every : steps_per_epoch;
    schedule.lr = r.lr;
    schedule.total = total;
    schedule.decay = r.decay;
    schedule.warmup = r.warmup < 1 ? static_cast<int64_t>(r.warmup * total) : static_cast<int64_t>(r.warmup);

    AdamWOptions ao;
    ao.weight_decay = r.weight_decay;
    std::vector<std::pair<std::string, torch::Tensor>> params;
    for (auto& kv : model->named_parameters()) params.emplace_back(kv.key(), kv.value());
    opt = std::make_unique<AdamW>(std::move(params), ao);
    opt->set_lr_multiplier(new_params, r.lr_mult);
    if (ck.step >= 0) opt->load(ck.dir + "/optimizer.safetensors");
    std::vector<torch::Tensor> ps;
    for (auto& kv : opt->params()) ps.push_back(kv.second);
    pg->broadcast(ps);

    const int64_t micro = st.step * o.accumulate;
    loader->seek(micro / per_epoch, micro % per_epoch);
    if (rank0()) {
      fs::create_directories(o.run_dir);
      truncate_metrics(path("metrics.jsonl"), st.step);
      log::info("finetune {}: {} samples, {} steps of {} ({} per epoch), lr {} (new heads x{}), {} px; rank {} of {}; "
                "precision {}",
                task_name(task), loader->samples(), total, r.batch_size, steps_per_epoch, r.lr, r.lr_mult,
                config.image_res, env.rank, env.world, nn::precision_name(precision));
    }
  }

  DatasetManifest manifest;

  // A dataset dir eve-prep made for another task holds records this task cannot train on.
  void check_dataset_task() {
    if (!manifest.found || manifest.task.empty() || manifest.task == task_name(task)) return;
    // Caption pairs are retrieval records too: one image with its captions.
    if (task == Task::retrieval && manifest.task == "pairs") return;
    throw UsageError("--data " + o.data + " is a " + manifest.task + " dataset (" + manifest.path + " \"task\": \"" +
                         manifest.task + "\"), not one for --task " + task_name(task),
                     {}, {},
                     "give the dataset dir eve-prep " + std::string(task_name(task)) + " wrote, or --task " +
                         manifest.task + (manifest.task == "pairs" ? std::string(" datasets are for eve-pretrain") : ""));
  }

  // The splits the run evaluates or predicts after training, each with where its name came
  // from and how to change it.
  std::vector<std::pair<std::string, std::string>> eval_splits() const {
    std::vector<std::pair<std::string, std::string>> splits;
    if (!o.eval_only && has_val()) splits.emplace_back(r.val, r.val_origin);
    for (const auto& p : o.predict)
      splits.emplace_back(p, "given by --predict " + p + "; give a split the dataset dir holds");
    return splits;
  }

  // Every split the run evaluates or predicts after training must be there before the first
  // step (checked before anything is loaded), its records readable and their images in the
  // image store (checked once the model's vocabulary is known).
  void require_eval_splits() {
    for (const auto& [split, origin] : eval_splits()) require_split(o.data, split, origin);
  }
  void check_eval_splits() {
    std::unique_ptr<io::ImageStore> store;
    for (const auto& [split, origin] : eval_splits()) {
      TaskRecords d = read_task_records(task, o.data, split, config.vocab_size, false);
      if (!store) store = std::make_unique<io::ImageStore>(o.data);
      for (const auto& s : d.samples)
        for (const auto& key : s.images)
          if (!store->contains(key))
            throw Error("image \"" + key + "\" is not in the image store of " + o.data, s.where, {},
                        "the split " + split + " was prepared with other images than the dataset dir holds");
    }
  }

  void finish_model_setup() {
    model->to(device);
    model->train();
    if (o.grad_checkpoint) model->set_gradient_checkpointing(true);
    if (rank0() && model->gradient_checkpointing())
      log::info("gradient checkpointing: encoder layers recompute their activations in backward");
  }

  ojson run_json() const {
    ojson j{{"task", task_name(task)}, {"seed", seed}, {"world_size", env.world}, {"batch_size", r.batch_size},
            {"accumulate", o.accumulate}, {"precision", nn::precision_name(precision)}};
    j["recipe"] = recipe_json(r);
    return j;
  }

  ojson trainer_state(double loss) const {
    const int64_t micro = st.step * o.accumulate, per_epoch = loader->batches_per_epoch();
    return ojson{{"format", "eve-trainer 1"},
                 {"step", st.step},
                 {"total_steps", total},
                 {"epoch", micro / per_epoch},
                 {"batch_in_epoch", micro % per_epoch},
                 {"loss", loss},
                 {"best_value", best_value},
                 {"best_step", best_step},
                 {"best_metric", main_metric(task)},
                 {"lr_mult_params", new_params},
                 {"schedule", {{"lr", schedule.lr}, {"warmup", schedule.warmup}, {"total", schedule.total},
                               {"decay", schedule.decay}}},
                 {"options", run_json()}};
  }

  // ---- training losses ----

  // The training sample at row i of a loader batch, read from its host tensor.
  static size_t sample_of(const Batch& b, int64_t i) {
    return static_cast<size_t>(b.samples.data_ptr<int64_t>()[i]);
  }

  // The loss of micro-batch `micro` (the step's micro-batches counted over the run), its forward
  // passes under the run's precision; losses in float32.
  MicroLoss task_loss(const Batch& b, int64_t micro) {
    nn::Autocast autocast(precision, device.str());
    MicroLoss out;
    Tensor images = b.images.to(device), ids = b.ids.to(device), mask = b.mask.to(device);
    const double w_aux = config.moe_lossweight;
    if (task == Task::retrieval) {
      Tensor groups = torch::empty({b.samples.size(0)}, torch::kInt64);
      auto group = groups.accessor<int64_t, 1>();
      for (int64_t i = 0; i < groups.size(0); ++i) group[i] = train_data.groups[sample_of(b, i)];
      ContrastiveOptions co;
      // The same on every rank and for any world size: N workers draw the negatives of 1 process.
      co.negative_seed = Rng(seed, kNegativeStream, static_cast<uint64_t>(micro)).next();
      ContrastiveLoss l = contrastive_loss(*model, images, ids, mask, groups, co, pg.get());
      out.total = l.total;
      out.parts = {{"itc", l.itc}, {"itm", l.itm}, {"itm_accuracy", l.itm_accuracy}, {"aux", l.aux}};
      out.load = std::move(l.load);
      return out;
    }
    model::EncoderInput in;
    in.text_ids = ids;
    in.text_mask = mask;
    if (task == Task::vqa) {
      in.image = images;
      model::EncoderOutput e = model->encode(model::Mode::vl, in);
      Tensor logits = model->vqa_logits(e.pooled).to(torch::kFloat32);
      Tensor t = torch::zeros({logits.size(0), logits.size(1)});
      auto target = t.accessor<float, 2>();
      for (int64_t i = 0; i < t.size(0); ++i)
        for (const auto& [k, v] : targets[sample_of(b, i)]) target[i][k] = v;
      Tensor bce = F::binary_cross_entropy_with_logits(logits, t.to(device)) * static_cast<double>(logits.size(1));
      out.total = config.official() ? bce : bce + w_aux * e.aux;
      out.parts = {{"bce", bce.detach()}, {"aux", e.aux.detach()}};
      out.load = std::move(e.load);
      return out;
    }
    // NLVR2: the left and right image with the same sentence.
    Tensor labels = torch::empty({b.samples.size(0)}, torch::kInt64);
    auto label = labels.accessor<int64_t, 1>();
    for (int64_t i = 0; i < labels.size(0); ++i) label[i] = train_data.labels[sample_of(b, i)];
    Tensor logits, aux;
    std::tie(logits, aux) = nlvr2_forward(images, b.images2.to(device), ids, mask, &out.load);
    logits = logits.to(torch::kFloat32);
    Tensor ce = F::cross_entropy(logits, labels.to(device));
    out.total = ce + w_aux * aux;
    out.parts = {{"ce", ce.detach()}, {"aux", aux.detach()},
                 {"accuracy", logits.argmax(1).eq(labels.to(device)).to(torch::kFloat64).mean()}};
    return out;
  }

  std::pair<Tensor, Tensor> nlvr2_forward(const Tensor& left, const Tensor& right, const Tensor& ids,
                                          const Tensor& mask, std::vector<model::LayerLoad>* load) {
    const int64_t b = left.size(0);
    model::EncoderInput in;
    if (r.head == "biattn") {
      in.text_ids = ids;
      in.text_mask = mask;
      in.image = left;
      model::EncoderOutput e0 = model->encode(model::Mode::vl, in);
      in.image = right;
      model::EncoderOutput e1 = model->encode(model::Mode::vl, in);
      if (load) {
        accumulate_load(*load, e0.load);
        accumulate_load(*load, e1.load);
      }
      return {model->nlvr2_biattn_logits(e0, e1), (e0.aux + e1.aux) / 2};
    }
    in.image = torch::cat({left, right});
    in.text_ids = torch::cat({ids, ids});
    in.text_mask = torch::cat({mask, mask});
    model::EncoderOutput e = model->encode(model::Mode::vl, in);
    if (load) *load = e.load;
    return {model->nlvr2_logits(e.pooled.narrow(0, 0, b), e.pooled.narrow(0, b, b)), e.aux};
  }

  // ---- evaluation ----

  std::unique_ptr<Loader> eval_loader(const TaskRecords& data) {
    LoaderOptions lo;
    lo.dir = o.data;
    lo.global_batch = 1;
    lo.max_text_len = config.max_text_len;
    lo.pad_id = config.pad_token_id;
    lo.threads = resolve_threads(common.threads);
    lo.augment.res = config.image_res;
    return std::make_unique<Loader>(data.samples, lo);
  }

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
  ojson evaluate(const std::string& split, const std::string& out_stem, bool rerank) {
    torch::NoGradGuard guard;
    model->eval();
    TaskRecords data = read_task_records(task, o.data, split, config.vocab_size, false);
    if (rank0()) warn_long_texts(data, config.max_text_len, split_stem(split));
    ojson m{{"split", split_stem(split)}};
    if (task == Task::retrieval) {
      evaluate_retrieval(data, out_stem, rerank, m);
    } else {
      auto ld = eval_loader(data);
      const int64_t n = ld->samples();
      std::vector<int64_t> pred(static_cast<size_t>(n));
      for_batches(n, [&](const std::vector<int64_t>& idx) {
        Batch b = ld->load(idx);
        Tensor logits;
        nn::Autocast autocast(precision, device.str());
        if (task == Task::vqa) {
          model::EncoderInput in;
          in.image = b.images.to(device);
          in.text_ids = b.ids.to(device);
          in.text_mask = b.mask.to(device);
          logits = model->vqa_logits(model->encode(model::Mode::vl, in).pooled);
        } else {
          logits = nlvr2_forward(b.images.to(device), b.images2.to(device), b.ids.to(device), b.mask.to(device),
                                 nullptr).first;
        }
        Tensor a = logits.argmax(1).cpu();
        for (size_t i = 0; i < idx.size(); ++i) pred[static_cast<size_t>(idx[i])] = a[static_cast<int64_t>(i)].item<int64_t>();
      });
      double correct = 0;
      std::string text;
      const bool labelled = data.labelled();
      if (task == Task::vqa) {
        ojson list = ojson::array();
        for (int64_t i = 0; i < n; ++i) {
          const std::string& ans = answers[static_cast<size_t>(pred[static_cast<size_t>(i)])];
          list.push_back(ojson{{"question_id", data.question_ids[static_cast<size_t>(i)]}, {"answer", ans}});
          if (labelled)
            correct += eval::vqa_question_accuracy(data.human_answers[static_cast<size_t>(i)], ans,
                                                   eval::VqaEvaluator::current);
        }
        text = list.dump() + "\n";
      } else {
        for (int64_t i = 0; i < n; ++i) {
          const int64_t p = pred[static_cast<size_t>(i)];
          text += data.identifiers[static_cast<size_t>(i)] + "," + (p == 1 ? "True" : "False") + "\n";
          if (labelled) correct += p == data.labels[static_cast<size_t>(i)];
        }
      }
      if (labelled) m["accuracy"] = 100.0 * correct / static_cast<double>(n);
      m["examples"] = n;
      if (!out_stem.empty())
        io::write_file_atomic(out_stem + (task == Task::vqa ? ".json" : ".csv"), text);
    }
    model->train();
    return m;
  }

  void evaluate_retrieval(const TaskRecords& data, const std::string& out_stem, bool rerank, ojson& m) {
    model::RetrievalEncoder enc(model, device, o.run_dir, rerank);
    auto ld = eval_loader(data);
    const int64_t ni = ld->samples(), nt = static_cast<int64_t>(data.texts.size());
    std::vector<Tensor> fv, ft;
    for_batches(ni, [&](const std::vector<int64_t>& idx) { fv.push_back(enc.images(ld->load(idx).images)); });
    // A compat official model's outputs depend on the batch: texts go 256 at a time, as the
    // released evaluation embeds them.
    const int64_t text_batch = config.official() ? 256 : o.eval_batch_size;
    for_batches(nt, text_batch, [&](const std::vector<int64_t>& idx) {
      std::vector<const std::vector<int64_t>*> tok;
      for (int64_t i : idx) tok.push_back(&data.texts[static_cast<size_t>(i)]);
      ft.push_back(enc.texts(tok));
    });
    Tensor i2t = torch::matmul(torch::cat(fv), torch::cat(ft).t()).contiguous();
    Tensor t2i = i2t.t().contiguous();
    std::vector<uint32_t> text_image(static_cast<size_t>(nt));
    for (int64_t i = 0; i < ni; ++i)
      for (uint32_t t = data.text_offsets[static_cast<size_t>(i)]; t < data.text_offsets[static_cast<size_t>(i) + 1]; ++t)
        text_image[t] = static_cast<uint32_t>(i);
    if (rerank && r.k_test > 0) {
      std::tie(i2t, t2i) = config.official() ? rerank_itm_per_query(enc, *ld, data, i2t, t2i)
                                             : rerank_itm(enc, *ld, data, i2t, t2i);
      m["k_test"] = r.k_test;
    }
    eval::RetrievalAnnotations ann;
    ann.path = data.path;
    ann.images = data.image_keys;
    ann.text_offsets = data.text_offsets;
    ann.text_image = text_image;
    auto ri = eval::image_to_text_ranks(ann, i2t.data_ptr<float>(), "i2t", nullptr);
    auto rt = eval::text_to_image_ranks(ann, t2i.data_ptr<float>(), "t2i", nullptr);
    eval::RetrievalScores s = eval::retrieval_recall(ri, rt);
    m["txt_r1"] = s.txt_r1;
    m["txt_r5"] = s.txt_r5;
    m["txt_r10"] = s.txt_r10;
    m["img_r1"] = s.img_r1;
    m["img_r5"] = s.img_r5;
    m["img_r10"] = s.img_r10;
    m["r_mean"] = s.r_mean;
    m["images"] = ni;
    m["texts"] = nt;
    if (out_stem.empty()) return;
    std::vector<std::string> text_ids;
    for (int64_t t = 0; t < nt; ++t) {
      const uint32_t img = text_image[static_cast<size_t>(t)];
      text_ids.push_back(data.image_keys[img] + "#" + std::to_string(t - data.text_offsets[img]));
    }
    auto write = [&](const Tensor& scores, const std::string& dir, const std::vector<std::string>& qids,
                     const std::vector<std::string>& gids) {
      io::write_npy(out_stem + "." + dir + ".npy",
                    io::make_npy_f32({scores.size(0), scores.size(1)},
                                     std::vector<float>(scores.data_ptr<float>(),
                                                        scores.data_ptr<float>() + scores.numel())));
      const int64_t k = std::min<int64_t>(10, scores.size(1));
      auto top = scores.topk(k, 1);
      Tensor val = std::get<0>(top), ix = std::get<1>(top);
      std::string text;
      for (int64_t q = 0; q < scores.size(0); ++q) {
        ojson res = ojson::array();
        for (int64_t j = 0; j < k; ++j)
          res.push_back(ojson::array({gids[static_cast<size_t>(ix[q][j].item<int64_t>())], val[q][j].item<float>()}));
        text += io::to_jsonl_line(ojson{{"query", qids[static_cast<size_t>(q)]}, {"results", res}});
      }
      io::write_file_atomic(out_stem + "." + dir + ".ranks.jsonl", text);
    };
    write(i2t, "i2t", data.image_keys, text_ids);
    write(t2i, "t2i", text_ids, data.image_keys);
  }

  // EVE's re-rank: each query's top k_test candidates by ITC get the ITM match logit, every
  // other entry -100. Pairs are scored image by image so only a batch of images is in memory.
  std::pair<Tensor, Tensor> rerank_itm(model::RetrievalEncoder& enc, Loader& ld, const TaskRecords& data,
                                       const Tensor& i2t, const Tensor& t2i) {
    const int64_t ni = i2t.size(0), nt = i2t.size(1);
    Tensor top_t = std::get<1>(i2t.topk(std::min<int64_t>(r.k_test, nt), 1));
    Tensor top_i = std::get<1>(t2i.topk(std::min<int64_t>(r.k_test, ni), 1));
    std::vector<std::set<int64_t>> pairs(static_cast<size_t>(ni));  // image -> texts to score
    auto tt = top_t.accessor<int64_t, 2>();
    auto ti = top_i.accessor<int64_t, 2>();
    for (int64_t i = 0; i < ni; ++i)
      for (int64_t j = 0; j < top_t.size(1); ++j) pairs[static_cast<size_t>(i)].insert(tt[i][j]);
    for (int64_t t = 0; t < nt; ++t)
      for (int64_t j = 0; j < top_i.size(1); ++j) pairs[static_cast<size_t>(ti[t][j])].insert(t);
    Tensor logit = torch::full({ni, nt}, std::nanf(""));
    for_batches(ni, [&](const std::vector<int64_t>& idx) {
      Tensor pixels = ld.load(idx).images;
      std::vector<int64_t> rows, img, txt;
      std::vector<const std::vector<int64_t>*> tok;
      auto flush = [&]() {
        if (rows.empty()) return;
        Tensor s = enc.match(pixels.index_select(0, torch::tensor(rows)), tok);
        logit.index_put_({torch::tensor(img), torch::tensor(txt)}, s);
        rows.clear();
        img.clear();
        txt.clear();
        tok.clear();
      };
      for (size_t k = 0; k < idx.size(); ++k)
        for (int64_t t : pairs[static_cast<size_t>(idx[k])]) {
          rows.push_back(static_cast<int64_t>(k));
          img.push_back(idx[k]);
          txt.push_back(t);
          tok.push_back(&data.texts[static_cast<size_t>(t)]);
          if (static_cast<int>(rows.size()) == o.eval_batch_size) flush();
        }
      flush();
    });
    Tensor a = torch::full({ni, nt}, -100.0f), b = torch::full({nt, ni}, -100.0f);
    a.scatter_(1, top_t, logit.gather(1, top_t));
    b.scatter_(1, top_i, logit.t().contiguous().gather(1, top_i));
    return {a.contiguous(), b.contiguous()};
  }

  // The re-rank of a compat official model, batched as the released evaluation does: each
  // query's top k_test candidates, in ITC order, form one fusion batch (image queries first,
  // then text queries), since capacity limits make a pair's logit depend on its batch. A
  // pair among both an image's and a text's candidates is scored in each batch.
  std::pair<Tensor, Tensor> rerank_itm_per_query(model::RetrievalEncoder& enc, Loader& ld, const TaskRecords& data,
                                                 const Tensor& i2t, const Tensor& t2i) {
    const int64_t ni = i2t.size(0), nt = i2t.size(1);
    Tensor top_t = std::get<1>(i2t.topk(std::min<int64_t>(r.k_test, nt), 1)).contiguous();
    Tensor top_i = std::get<1>(t2i.topk(std::min<int64_t>(r.k_test, ni), 1)).contiguous();
    Tensor a = torch::full({ni, nt}, -100.0f), b = torch::full({nt, ni}, -100.0f);
    std::vector<const std::vector<int64_t>*> tok;
    for (int64_t i = 0; i < ni; ++i) {
      Tensor cand = top_t[i];
      tok.clear();
      for (int64_t j = 0; j < cand.size(0); ++j) tok.push_back(&data.texts[static_cast<size_t>(cand[j].item<int64_t>())]);
      Tensor px = ld.load({i}).images;
      a[i].index_put_({cand}, enc.match(px.expand({cand.size(0), -1, -1, -1}), tok));
    }
    for (int64_t t = 0; t < nt; ++t) {
      Tensor cand = top_i[t];
      std::vector<int64_t> idx(cand.data_ptr<int64_t>(), cand.data_ptr<int64_t>() + cand.size(0));
      tok.assign(idx.size(), &data.texts[static_cast<size_t>(t)]);
      b[t].index_put_({cand}, enc.match(ld.load(idx).images, tok));
    }
    return {a, b};
  }

  // ---- the loop ----

  void log_metrics(const ojson& j) {
    if (!rank0()) return;
    std::ofstream f(path("metrics.jsonl"), std::ios::app);
    f << io::to_jsonl_line(j);
  }

  // Writes RUN/best/ atomically: the bundle with its answers and tokenizer.
  void save_best() {
    if (!rank0()) return;
    const fs::path tmp = path(".best.tmp"), dir = path("best"), old = path(".best.old");
    io::remove_tree(tmp);
    model::save_bundle(*model, tmp.string());
    copy_files(o.run_dir, tmp, {"answers.json", "tokenizer.model"});
    io::remove_tree(old);
    if (fs::exists(dir)) fs::rename(dir, old);
    fs::rename(tmp, dir);
    io::remove_tree(old);
  }

  void validate(double loss) {
    auto t0 = std::chrono::steady_clock::now();
    // Retrieval is validated by ITC scores alone, as EVE's training loop does; the final val
    // and test numbers are re-ranked by the matching head (--k-test).
    ojson m = evaluate(r.val, {}, false);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double value = m.value(main_metric(task), 0.0);
    const bool better = value > best_value;
    if (better) {
      best_value = value;
      best_step = st.step;
      save_best();
    }
    m["seconds"] = secs;
    log_metrics(ojson{{"step", st.step}, {"eval", m}});
    if (rank0())
      log::info("step {}: {} {}{} {:.2f}{} (loss {:.4f})", st.step, m["split"].get<std::string>(), main_metric(task),
                task == Task::retrieval ? " (ITC only)" : "", value, better ? ", best so far" : "", loss);
  }

  int train() {
    // name, run dir, accumulate, total, log_every, save_every, batch size, clip, seed, quiet;
    // the expert load only where a layer routes
    const StepLoopOptions lo{"finetune",   o.run_dir, o.accumulate, total,        o.log_every, o.save_every,
                             r.batch_size, r.clip,    seed,         common.quiet, false};
    StepHooks hooks;
    hooks.micro_loss = [&](int64_t micro) { return task_loss(loader->next(), micro); };
    // MoE load statistics only for the steps that log them.
    hooks.before_step = [&](bool logs) { model->set_want_load(logs); };
    hooks.write_checkpoint = [&](double loss) {
      write_checkpoint(o.run_dir, st.step, *model, *opt, trainer_state(loss), o.keep, false);
    };
    if (task == Task::retrieval) hooks.after_update = [&] { model->clamp_itc_temperature(); };
    if (has_val()) {
      hooks.evaluates = [&](int64_t step) { return step % eval_every == 0 || step == total; };
      hooks.evaluate = [&](double loss) { validate(loss); };
    }
    hooks.checkpoint_at_evaluation = true;
    return run_step_loop(lo, schedule, *opt, *pg, st, hooks);
  }

  // The final bundle in the run dir and the predictions of the chosen model.
  void finish() {
    if (!o.eval_only) {
      if (has_val()) {
        if (!fs::exists(path("best/model.safetensors"))) {
          validate(0);  // a resumed run that ended before any validation
        }
        model::load_weights(*model, path("best/model.safetensors"));
        if (rank0()) copy_files(path("best"), o.run_dir, {"config.json", "model.safetensors"});
      } else if (rank0()) {
        model::save_bundle(*model, o.run_dir);
      }
      pg->barrier();
    }
    std::vector<std::string> splits = o.predict;
    if (!o.eval_only && has_val() && std::find(splits.begin(), splits.end(), r.val) == splits.end())
      splits.insert(splits.begin(), r.val);
    ojson results = ojson::object();
    if (!o.eval_only) {
      results["best_step"] = best_step;
      results["best_metric"] = main_metric(task);
      results["best_value"] = best_value;
    }
    ojson per = ojson::object();
    if (rank0()) {
      fs::create_directories(path("predictions"));
      log::info("predicting with compat {}: {}", config.compat, model::inference_routing(config));
    }
    for (const auto& split : splits) {
      const std::string stem = rank0() ? path("predictions/" + split_stem(split)) : std::string();
      ojson m = evaluate(split, stem, true);
      if (rank0()) log::info("{}: {}", split_stem(split), m.dump());
      per[split_stem(split)] = m;
    }
    results["splits"] = per;
    results["compat"] = config.compat;
    results["inference_routing"] = model::inference_routing_key(config);
    results["recipe"] = recipe_json(r);
    if (rank0()) io::write_file_atomic(path("results.json"), results.dump(2) + "\n");
  }
};

}  // namespace

std::string resolved_recipe(const FinetuneOptions& options) { return recipe_json(resolve(options)).dump(2) + "\n"; }

int run_finetune(const FinetuneOptions& options, const cli::CommonOptions& common) {
  if (options.task == "probe") {  // no training of the backbone: a task of its own (probe.h)
    ProbeOptions p = options.probe;
    p.init = options.init;
    p.out = options.run_dir;
    if (options.batch_size > 0) p.batch_size = options.batch_size;
    return run_probe(p, common);
  }
  if (options.data.empty()) throw UsageError("--data is required");
  if (options.run_dir.empty()) throw UsageError("--out is required");
  if (options.train.empty() && !options.eval_only) throw UsageError("--train needs at least one split");
  if (options.nproc_per_node < 0 || options.dist_timeout < 1)
    throw UsageError("--nproc-per-node >= 0 and --dist-timeout >= 1");
  Finetuner t(options, common);
  t.task = parse_task(options.task);
  t.r = resolve(options);
  if (options.nproc_per_node > 0 && !std::getenv("RANK")) {
    bool worker = false;
    const int code = launch_local_workers(options.nproc_per_node, options.dist_timeout, &worker);
    if (!worker) return code;
  }
  t.setup();
  const int code = options.eval_only ? 0 : t.train();
  t.finish();
  return code;
}

}  // namespace eve::train
