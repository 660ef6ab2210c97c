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
#include "eve/io/image_store.h"
#include "eve/io/jsonl.h"
#include "eve/io/npy.h"
#include "eve/model/bundle.h"
#include "eve/train/checkpoint.h"
#include "eve/train/contrastive.h"
#include "eve/train/finetuner.h"

namespace eve::train {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

void Finetuner::log_metrics(const ojson& j) {
  if (!rank0()) return;
  std::ofstream f(path("metrics.jsonl"), std::ios::app);
  f << io::to_jsonl_line(j);
}

// Writes RUN/best/ atomically: the bundle with its answers and tokenizer.
void Finetuner::save_best() {
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

void Finetuner::validate(double loss) {
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

int Finetuner::train() {
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
void Finetuner::finish() {
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

std::string resolved_recipe(const FinetuneOptions& options) { return recipe_json(resolve_recipe(options)).dump(2) + "\n"; }

int run_finetune(const FinetuneOptions& options, const cli::CommonOptions& common) {
  if (options.task == "probe") {  // no training of the backbone: a task of its own (probe.h)
    // A flag that only fine-tuning reads would be ignored here: refuse it, so that nobody
    // believes e.g. --lr or --image-res changed the probe.
    const std::pair<const char*, bool> fine_tuning_only[] = {
        {"--data", !options.data.empty()},         {"--predict", !options.predict.empty()},
        {"--val", options.val.has_value()},        {"--eval-only", options.eval_only},
        {"--answers", !options.answers.empty()},   {"--num-answers", options.num_answers.has_value()},
        {"--head", options.head.has_value()},      {"--k-test", options.k_test.has_value()},
        {"--image-res", options.image_res.has_value()}, {"--epochs", options.epochs.has_value()},
        {"--max-steps", options.max_steps.has_value()}, {"--lr", options.lr.has_value()},
        {"--lr-mult", options.lr_mult.has_value()}, {"--warmup", options.warmup.has_value()},
        {"--decay", options.decay.has_value()},    {"--clip", options.clip.has_value()},
        {"--weight-decay", options.weight_decay.has_value()},
        {"--crop-scale-min", options.crop_scale_min.has_value()},
        {"--flip/--no-flip", options.flip.has_value()},
        {"--rand-augment/--no-rand-augment", options.rand_augment.has_value()},
        {"--grad-checkpoint", options.grad_checkpoint}, {"--nproc-per-node", options.nproc_per_node > 0}};
    for (const auto& [flag, given] : fine_tuning_only)
      if (given)
        throw UsageError(std::string("--task probe takes no ") + flag +
                         ": the probe fits a linear classifier on the frozen backbone's features "
                         "(its flags: --labels, --images, --field, --features, --baseline, --holdout, --split)");
    ProbeOptions p = options.probe;
    p.init = options.init;
    p.out = options.run_dir;
    if (options.batch_size) p.batch_size = *options.batch_size;
    return run_probe(p, common);
  }
  if (options.data.empty()) throw UsageError("--data is required");
  if (options.run_dir.empty()) throw UsageError("--out is required");
  if (options.train.empty() && !options.eval_only) throw UsageError("--train needs at least one split");
  if (options.nproc_per_node < 0 || options.dist_timeout < 1)
    throw UsageError("--nproc-per-node >= 0 and --dist-timeout >= 1");
  Finetuner t(options, common);
  t.task = parse_task(options.task);
  t.r = resolve_recipe(options);
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
