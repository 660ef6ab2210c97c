// eve-finetune: options, data, model and optimiser of a run, and its resume point.
#include "eve/train/finetuner.h"

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
#include "eve/io/image_store.h"
#include "eve/io/jsonl.h"
#include "eve/io/npy.h"
#include "eve/model/bundle.h"
#include "eve/train/checkpoint.h"
#include "eve/train/contrastive.h"

namespace eve::train {

namespace fs = std::filesystem;
namespace F = torch::nn::functional;
using ojson = nlohmann::ordered_json;
using torch::Tensor;

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

void Finetuner::load_model_from_init(bool keep_heads) {
  model::LoadOptions lo;
  lo.allow_partial = !keep_heads;
  lo.image_res = keep_heads ? o.image_res.value_or(0) : r.image_res;
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
void Finetuner::choose_answers() {
  if (!o.answers.empty()) {
    answers = read_answers(o.answers);
    answers_source = AnswerSource::file;
  } else if (!o.num_answers && !o.init.empty() && io::file_exists(o.init + "/answers.json")) {
    answers = read_answers(o.init + "/answers.json");
    answers_source = AnswerSource::init;
  } else {
    answers = top_answers({&train_data}, r.num_answers);
    answers_source = AnswerSource::training;
  }
}

// Where the answer list came from, as the log names it.
std::string Finetuner::answers_origin() const {
  switch (answers_source) {
    case AnswerSource::file: return o.answers;
    case AnswerSource::init: return o.init + "/answers.json";
    case AnswerSource::training: break;
  }
  return "the training split's most frequent answers";
}

void Finetuner::setup() {
  env = dist_env_from_environment();
  seed = common.seed;
  const std::string dev = model::init_runtime(common);
  precision = model::run_precision();
  device = training_device(dev, env);
  pg = std::make_unique<ProcessGroup>(env, o.dist_timeout, device);
  manifest = read_dataset_manifest(o.data);
  check_dataset_task();
  require_eval_splits();

  if (o.eval_only) {
    if (o.init.empty()) throw UsageError("--eval-only needs --model (a fine-tuned bundle)");
    if (o.predict.empty()) throw UsageError("--eval-only needs at least one --predict split");
    load_model_from_init(true);
    // An NLVR2 bundle carries one of the two heads: use the one it has unless --head says.
    if (task == Task::nlvr2 && !o.head && config.has_head("nlvr2_biattn") && !config.has_head("nlvr2"))
      r.head = "biattn";
    for (const auto& h : task_heads(task, r))
      if (!config.has_head(h))
        throw UsageError("--model " + o.init + " has no " + h + " head", {}, {},
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
    model::Bundle b = resume_model(rp, seed, st);
    model = b.model;
    config = b.config;
    best_value = state.value("best_value", -1.0);
    best_step = state.value("best_step", int64_t{-1});
    new_params = state["lr_mult_params"].get<std::vector<std::string>>();
    if (task == Task::vqa) answers = read_answers(path("answers.json"));
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
        throw UsageError("--tokenizer is required without --model (the tok.json written beside the tokenizer model)");
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
  total = o.max_steps.value_or(0) > 0 ? *o.max_steps : std::max<int64_t>(1, static_cast<int64_t>(r.epochs * steps_per_epoch));
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
              config.image_res, env.rank, env.world, model::precision_name(precision));
  }
}

// A dataset dir eve-prep made for another task holds records this task cannot train on.
void Finetuner::check_dataset_task() {
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
std::vector<std::pair<std::string, std::string>> Finetuner::eval_splits() const {
  std::vector<std::pair<std::string, std::string>> splits;
  if (!o.eval_only && has_val()) splits.emplace_back(r.val, r.val_origin);
  for (const auto& p : o.predict)
    splits.emplace_back(p, "given by --predict " + p + "; give a split the dataset dir holds");
  return splits;
}

// Every split the run evaluates or predicts after training must be there before the first
// step (checked before anything is loaded), its records readable and their images in the
// image store (checked once the model's vocabulary is known).
void Finetuner::require_eval_splits() {
  for (const auto& [split, origin] : eval_splits()) require_split(o.data, split, origin);
}

void Finetuner::check_eval_splits() {
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

void Finetuner::finish_model_setup() {
  model->to(device);
  model->train();
  if (o.grad_checkpoint) model->set_gradient_checkpointing(true);
  if (rank0() && model->gradient_checkpointing())
    log::info("gradient checkpointing: encoder layers recompute their activations in backward");
}

ojson Finetuner::run_json() const {
  ojson j{{"task", task_name(task)}, {"seed", seed}, {"world_size", env.world}, {"batch_size", r.batch_size},
          {"accumulate", o.accumulate}, {"precision", model::precision_name(precision)}};
  j["recipe"] = recipe_json(r);
  return j;
}

ojson Finetuner::trainer_state(double loss) const {
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

}  // namespace eve::train
