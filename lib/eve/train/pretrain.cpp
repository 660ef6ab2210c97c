#include "eve/train/pretrain.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "eve/core/error.h"
#include "eve/core/log.h"
#include "eve/core/progress.h"
#include "eve/core/signals.h"
#include "eve/core/threads.h"
#include "eve/data/rng.h"
#include "eve/io/file.h"
#include "eve/io/jsonl.h"
#include "eve/model/bundle.h"
#include "eve/model/runtime.h"
#include "eve/train/checkpoint.h"
#include "eve/train/distributed.h"
#include "eve/train/loader.h"
#include "eve/train/msm.h"
#include "eve/train/optim.h"
#include "eve/train/run_common.h"

namespace eve::train {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace {

constexpr uint64_t kTorchStream = 0x746f726368ull;  // "torch"

void check_options(const PretrainOptions& o) {
  auto bad = [](const std::string& m) { throw UsageError(m); };
  if (o.data.empty()) bad("--data is required");
  if (o.run_dir.empty()) bad("--out is required");
  if (o.objective != "msm")
    bad("--objective " + o.objective + ": only msm (masked signal modeling) is available in this version");
  if (o.batch_size < 1) bad("--batch-size must be at least 1");
  if (o.accumulate < 1) bad("--accumulate must be at least 1");
  if (o.batch_size % o.accumulate != 0) bad("--batch-size must be a multiple of --accumulate");
  if (o.max_steps < 0) bad("--max-steps must be >= 0");
  if (o.max_steps == 0 && !(o.epochs > 0)) bad("--epochs must be > 0 (or give --max-steps)");
  if (!(o.lr > 0) || o.min_lr < 0 || o.min_lr > o.lr) bad("--lr must be > 0 and --min-lr in [0, lr]");
  if (o.warmup < 0) bad("--warmup must be >= 0");
  if (o.decay != "cosine" && o.decay != "linear" && o.decay != "constant")
    bad("--decay " + o.decay + ": expected cosine, linear or constant");
  if (!(o.image_mask_ratio > 0 && o.image_mask_ratio < 1)) bad("--image-mask-ratio must be in (0, 1)");
  if (!(o.text_mask_ratio > 0 && o.text_mask_ratio < 1)) bad("--text-mask-ratio must be in (0, 1)");
  if (o.mim_weight < 0 || o.mlm_weight < 0) bad("loss weights must be >= 0");
  if (!(o.crop_scale_min > 0 && o.crop_scale_min <= 1)) bad("--crop-scale-min must be in (0, 1]");
  if (o.clip < 0 || o.weight_decay < 0) bad("--clip and --weight-decay must be >= 0");
  if (o.save_every < 0 || o.keep < 1 || o.log_every < 1) bad("--save-every >= 0, --keep >= 1, --log-every >= 1");
  if (o.nproc_per_node < 0 || o.dist_timeout < 1) bad("--nproc-per-node >= 0 and --dist-timeout >= 1");
}

ojson options_json(const PretrainOptions& o, uint64_t seed, int world) {
  return ojson{{"seed", seed},           {"world_size", world},
               {"batch_size", o.batch_size}, {"accumulate", o.accumulate},
               {"objective", o.objective}, {"image_mask_ratio", o.image_mask_ratio},
               {"text_mask_ratio", o.text_mask_ratio}, {"mim_weight", o.mim_weight},
               {"mlm_weight", o.mlm_weight}, {"crop_scale_min", o.crop_scale_min},
               {"flip", o.flip},          {"rand_augment", o.rand_augment}};
}

struct Trainer {
  PretrainOptions o;
  const cli::CommonOptions& common;
  DistEnv env;
  std::unique_ptr<ProcessGroup> pg;
  model::EveModel model{nullptr};
  model::ModelConfig config;
  text::TokenizerInfo tok;
  std::unique_ptr<AdamW> opt;
  std::unique_ptr<Loader> loader;
  Schedule schedule;
  MsmOptions msm;
  int64_t step = 0, total = 0;
  uint64_t seed = 0;

  Trainer(PretrainOptions opts, const cli::CommonOptions& c) : o(std::move(opts)), common(c) {}

  bool rank0() const { return env.rank == 0; }

  void setup() {
    env = dist_env_from_environment();
    pg = std::make_unique<ProcessGroup>(env, o.dist_timeout);
    seed = common.seed;
    CheckpointRef ck = latest_checkpoint(o.run_dir);
    if (o.resume && ck.step < 0)
      throw UsageError("--resume: " + o.run_dir + " holds no complete checkpoint");
    ojson state;
    if (ck.step >= 0) {
      state = io::parse_ordered_json(io::read_file(ck.dir + "/trainer.json"), ck.dir + "/trainer.json");
      const ojson want = options_json(o, state["options"]["seed"].get<uint64_t>(), env.world);
      for (const char* key : {"world_size", "batch_size", "accumulate", "objective"})
        if (state["options"][key] != want[key])
          throw UsageError(std::string("cannot resume ") + ck.dir + ": it was trained with " + key + " " +
                               state["options"][key].dump() + ", this run has " + want[key].dump(),
                           {}, {}, "resume with the same options, or use a new --out");
      seed = state["options"]["seed"].get<uint64_t>();
      model::Bundle b = model::load_bundle(ck.dir);
      model = b.model;
      config = b.config;
      step = state["step"].get<int64_t>();
      if (rank0()) log::info("resuming from {} (step {})", ck.dir, step);
    } else {
      if (o.tokenizer.empty() && o.init.empty())
        throw UsageError("--tokenizer is required (the tok.json written beside the tokenizer model)");
      if (!o.init.empty()) {
        model::LoadOptions lo;
        lo.allow_partial = true;
        lo.replace_heads = true;
        lo.heads = {"mlm", "mim"};
        model::Bundle b = model::load_bundle(o.init, lo);
        model = b.model;
        config = b.config;
      } else {
        config = model::load_config(o.config);
        config.heads = {"mlm", "mim"};
      }
      if (!o.tokenizer.empty())
        adopt_tokenizer(o.tokenizer, config, model ? config.vocab_size : 0, rank0() ? o.run_dir : std::string());
      config.validate(o.config);
      if (!model) model = model::EveModel(config);
    }
    tok = tokenizer_of(config);
    msm.image_mask_ratio = o.image_mask_ratio;
    msm.text_mask_ratio = o.text_mask_ratio;
    msm.mim_weight = o.mim_weight;
    msm.mlm_weight = o.mlm_weight;
    msm.norm_target = config.mim_norm_target;

    auto samples = read_pair_samples(o.data, o.split, config.vocab_size);
    LoaderOptions lo;
    lo.dir = o.data;
    lo.global_batch = o.batch_size / o.accumulate;
    lo.rank = env.rank;
    lo.world = env.world;
    lo.seed = seed;
    lo.max_text_len = config.max_text_len;
    lo.pad_id = config.pad_token_id;
    lo.threads = resolve_threads(common.threads);
    lo.prefetch = o.prefetch;
    lo.augment.res = config.image_res;
    lo.augment.scale_min = o.crop_scale_min;
    lo.augment.flip = o.flip;
    lo.augment.rand_augment = o.rand_augment;
    loader = std::make_unique<Loader>(std::move(samples), lo);

    const int64_t per_epoch = loader->batches_per_epoch();
    total = o.max_steps > 0 ? o.max_steps
                            : std::max<int64_t>(1, static_cast<int64_t>(o.epochs * per_epoch / o.accumulate));
    schedule.lr = o.lr;
    schedule.min_lr = o.min_lr;
    schedule.total = total;
    schedule.decay = o.decay;
    schedule.warmup = o.warmup < 1 ? static_cast<int64_t>(std::llround(o.warmup * total))
                                   : static_cast<int64_t>(o.warmup);

    model->train();
    AdamWOptions ao;
    ao.beta1 = o.beta1;
    ao.beta2 = o.beta2;
    ao.eps = o.eps;
    ao.weight_decay = o.weight_decay;
    std::vector<std::pair<std::string, torch::Tensor>> params;
    for (auto& kv : model->named_parameters()) params.emplace_back(kv.key(), kv.value());
    opt = std::make_unique<AdamW>(std::move(params), ao);
    if (ck.step >= 0) opt->load(ck.dir + "/optimizer.safetensors");
    std::vector<torch::Tensor> ps;
    for (auto& kv : opt->params()) ps.push_back(kv.second);
    pg->broadcast(ps);

    const int64_t micro = step * o.accumulate;
    loader->seek(micro / per_epoch, micro % per_epoch);
    if (rank0()) {
      fs::create_directories(o.run_dir);
      truncate_metrics(o.run_dir + "/metrics.jsonl", step);
      auto [d, nd] = opt->group_sizes();
      log::info("pretrain: {} samples, {} micro-batches per epoch, {} steps of {} samples; rank {} of {}; "
                "{} parameters with weight decay, {} without",
                loader->samples(), per_epoch, total, o.batch_size, env.rank, env.world, d, nd);
    }
  }

  ojson trainer_state(double loss) const {
    const int64_t micro = step * o.accumulate, per_epoch = loader->batches_per_epoch();
    return ojson{{"format", "eve-trainer 1"},
                 {"step", step},
                 {"total_steps", total},
                 {"epoch", micro / per_epoch},
                 {"batch_in_epoch", micro % per_epoch},
                 {"samples_seen", step * o.batch_size},
                 {"loss", loss},
                 {"schedule", {{"lr", schedule.lr}, {"min_lr", schedule.min_lr}, {"warmup", schedule.warmup},
                               {"total", schedule.total}, {"decay", schedule.decay}}},
                 {"rng", {{"seed", seed},
                          {"scheme", "data order from (seed, epoch); augmentation from (seed, epoch, position); "
                                     "masks from (seed, micro-batch, position); torch generator reseeded from "
                                     "(seed, step, rank) before every step"}}},
                 {"options", options_json(o, seed, env.world)}};
  }

  void save(double loss) {
    if (rank0()) write_checkpoint(o.run_dir, step, *model, *opt, trainer_state(loss), o.keep);
    pg->barrier();
  }

  int run() {
    std::unique_ptr<Progress> progress;
    if (rank0() && !common.quiet) {
      progress = std::make_unique<Progress>("pretrain", static_cast<uint64_t>(total), "steps");
      progress->set(static_cast<uint64_t>(step));
    }
    std::ofstream metrics;
    if (rank0()) metrics.open(o.run_dir + "/metrics.jsonl", std::ios::app);
    std::vector<torch::Tensor> params;
    for (auto& kv : opt->params()) params.push_back(kv.second);
    double last_loss = 0;
    int64_t saved = -1;
    while (step < total) {
      auto t0 = std::chrono::steady_clock::now();
      torch::manual_seed(data::Rng(seed, kTorchStream, static_cast<uint64_t>(step * env.world + env.rank)).next() >> 1);
      opt->zero_grad();
      double loss = 0, mim = 0, mlm = 0, aux = 0;
      std::vector<model::LayerLoad> load;
      for (int a = 0; a < o.accumulate; ++a) {
        const int64_t micro = step * o.accumulate + a;
        Batch b = loader->next();
        MsmMasks m = make_msm_masks(b.ids, b.mask, config.num_patches(), msm, tok, seed, micro, b.first);
        // Global denominators: every rank's share of the global mean.
        auto counts = pg->sum({m.mim_mask.sum().item<double>(), m.mlm_labels.ne(-100).sum().item<double>()});
        MsmLoss l = msm_loss(*model, b.images, b.ids, b.mask, m, msm, counts[0] / env.world,
                             std::max(1.0, counts[1]) / env.world);
        (l.total / o.accumulate).backward();
        loss += l.total.item<double>() / o.accumulate;
        mim += l.mim / o.accumulate;
        mlm += l.mlm / o.accumulate;
        aux += l.aux / o.accumulate;
        accumulate_load(load, l.load);
      }
      auto totals = pg->sum({loss, std::isfinite(loss) ? 0.0 : 1.0, signals::stop_requested() ? 1.0 : 0.0});
      loss = totals[0] / env.world;
      if (totals[1] > 0)
        throw Error("the loss is not finite at step " + std::to_string(step + 1), {}, {},
                    "lower --lr or check the data; the last good checkpoint stays in " + o.run_dir);
      const double gnorm = sync_gradients(params, *pg, o.clip);
      const double lr = schedule.at(step);
      opt->step(lr);
      ++step;
      last_loss = loss;
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (rank0() && (step % o.log_every == 0 || step == total)) {
        ojson j{{"step", step}, {"loss", loss}, {"mim", mim}, {"mlm", mlm}, {"aux", aux}, {"lr", lr},
                {"grad_norm", gnorm}, {"samples_per_s", o.batch_size / std::max(secs, 1e-9)}};
        j["expert_load"] = expert_load_json(load);
        metrics << io::to_jsonl_line(j);
        metrics.flush();
      }
      if (progress) progress->set(static_cast<uint64_t>(step));
      if (o.save_every > 0 && step % o.save_every == 0 && step < total) {
        save(loss);
        saved = step;
      }
      if (totals[2] > 0 && step < total) {
        if (saved != step) save(loss);
        const int sig = signals::stop_signal() ? signals::stop_signal() : 15;
        if (rank0()) log::info("stopped at step {} by signal {}; checkpoint saved in {}", step, sig, o.run_dir);
        throw Interrupted(sig, "stopped at step " + std::to_string(step) + " after a checkpoint");
      }
    }
    if (saved != step) save(last_loss);
    if (progress) progress->finish(fmt::format("loss {:.4f}", last_loss));
    return 0;
  }
};

}  // namespace

int run_pretrain(const PretrainOptions& options, const cli::CommonOptions& common) {
  check_options(options);
  if (options.nproc_per_node > 0 && !std::getenv("RANK")) {
    bool worker = false;
    const int code = launch_local_workers(options.nproc_per_node, options.dist_timeout, &worker);
    if (!worker) return code;
  }
  nn::init_runtime(common);
  Trainer t(options, common);
  t.setup();
  return t.run();
}

}  // namespace eve::train
