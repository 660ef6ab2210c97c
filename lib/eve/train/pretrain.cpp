#include "eve/train/pretrain.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <unordered_map>

#include "eve/core/error.h"
#include "eve/core/log.h"
#include "eve/core/rng.h"
#include "eve/core/threads.h"
#include "eve/io/file.h"
#include "eve/io/jsonl.h"
#include "eve/model/bundle.h"
#include "eve/model/op_census.h"
#include "eve/model/runtime.h"
#include "eve/train/checkpoint.h"
#include "eve/train/contrastive.h"
#include "eve/train/distributed.h"
#include "eve/train/loader.h"
#include "eve/train/msm.h"
#include "eve/train/optim.h"
#include "eve/train/run_common.h"
#include "eve/train/step_loop.h"
#include "eve/train/text_loader.h"

namespace eve::train {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

std::string Objective::name() const {
  if (msm()) return "msm";
  const std::pair<bool, const char*> parts[] = {{itc, "itc"}, {itm, "itm"}, {mlm, "mlm"}, {mim, "mim"}};
  std::string out;
  for (const auto& [on, part] : parts)
    if (on) out += (out.empty() ? "" : ",") + std::string(part);
  return out;
}

std::vector<std::string> Objective::heads() const {
  std::vector<std::string> h;
  if (contrastive()) h.push_back("itc");
  if (itm) h.push_back("itm");
  if (mlm) h.push_back("mlm");
  if (mim) h.push_back("mim");
  return h;
}

Objective parse_objective(const std::string& objective, const std::string& stage) {
  if (stage != "vl" && stage != "image" && stage != "text")
    throw UsageError("--stage " + stage + ": expected vl, image or text");
  const std::string text = !objective.empty() ? objective : stage == "vl" ? "msm" : stage == "image" ? "mim" : "mlm";
  const std::string flag = "--objective " + text + ": ";
  Objective r;
  r.stage = stage;
  bool msm = false;
  int parts = 0;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, ',');) {
    ++parts;
    bool* on = part == "itc" ? &r.itc : part == "itm" ? &r.itm : part == "mlm" ? &r.mlm
             : part == "mim" ? &r.mim : part == "msm" ? &msm : nullptr;
    if (!on)
      throw UsageError(flag + "unknown objective \"" + part + "\"", {}, {},
                       "expected msm, or any of itc, itm, mlm separated by commas; mim with --stage image");
    if (*on) throw UsageError(flag + part + " is given twice");
    *on = true;
  }
  if (text.empty() || text.back() == ',')
    throw UsageError(flag + "unknown objective \"\"", {}, {},
                     "expected msm, or any of itc, itm, mlm separated by commas; mim with --stage image");
  if (msm && parts > 1)
    throw UsageError(flag + "msm (masked signal modeling) cannot be combined with other objectives");
  if (stage == "image" && (parts > 1 || !r.mim))
    throw UsageError("--stage image trains masked image modeling on images alone: --objective must be mim "
                     "(or left out), not " + text);
  if (stage == "text" && (parts > 1 || !r.mlm))
    throw UsageError("--stage text trains masked language modeling on text alone: --objective must be mlm "
                     "(or left out), not " + text);
  if (stage == "vl" && r.mim)
    throw UsageError(flag + "mim (masked image modeling alone) needs --stage image; --stage vl trains msm "
                     "or any of itc, itm, mlm");
  if (msm) r.mim = r.mlm = true;
  return r;
}

bool glob_match(const std::string& pattern, const std::string& name) {
  size_t p = 0, n = 0, star = std::string::npos, resume = 0;
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++p;
      ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = n;
    } else if (star != std::string::npos) {
      p = star + 1;
      n = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

namespace {

constexpr uint64_t kNegativeStream = 0x6e65676174ull;  // "negat": ITM hard negatives

void check_options(const PretrainOptions& o) {
  auto bad = [](const std::string& m) { throw UsageError(m); };
  if (o.data.empty()) bad("--data is required");
  if (o.run_dir.empty()) bad("--out is required");
  parse_objective(o.objective, o.stage);
  for (const auto& f : o.freeze)
    if (f.empty()) bad("--freeze needs a non-empty pattern");
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
  if (o.mim_weight < 0 || o.mlm_weight < 0 || o.itc_weight < 0 || o.itm_weight < 0)
    bad("loss weights must be >= 0");
  if (!(o.crop_scale_min > 0 && o.crop_scale_min <= 1)) bad("--crop-scale-min must be in (0, 1]");
  if (o.clip < 0 || o.weight_decay < 0) bad("--clip and --weight-decay must be >= 0");
  if (o.save_every < 0 || o.keep < 1 || o.log_every < 1) bad("--save-every >= 0, --keep >= 1, --log-every >= 1");
  if (o.nproc_per_node < 0 || o.dist_timeout < 1) bad("--nproc-per-node >= 0 and --dist-timeout >= 1");
}

ojson options_json(const PretrainOptions& o, const Objective& obj, uint64_t seed, int world, model::Precision precision) {
  return ojson{{"seed", seed},           {"world_size", world},
               {"precision", model::precision_name(precision)},
               {"batch_size", o.batch_size}, {"accumulate", o.accumulate},
               {"objective", obj.name()}, {"stage", obj.stage},
               {"freeze", o.freeze},      {"image_mask_ratio", o.image_mask_ratio},
               {"text_mask_ratio", o.text_mask_ratio}, {"mim_weight", o.mim_weight},
               {"mlm_weight", o.mlm_weight}, {"itc_weight", o.itc_weight},
               {"itm_weight", o.itm_weight}, {"crop_scale_min", o.crop_scale_min},
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
  std::unique_ptr<Loader> loader;            // stages vl and image
  std::unique_ptr<TextLoader> text_loader;   // stage text
  std::vector<int64_t> group_of_sample;      // ITC/ITM: one id per image key
  Objective obj;
  Schedule schedule;
  MsmOptions msm;
  LoopState st;                         // steps done, last checkpoint, where the run resumed
  int64_t total = 0;
  uint64_t seed = 0;
  model::Precision precision = model::run_precision();
  std::string runtime_device;           // what init_runtime resolved --device to
  torch::Device device{torch::kCPU};    // where this rank's model and batches live

  Trainer(PretrainOptions opts, const cli::CommonOptions& c, std::string runtime)
      : o(std::move(opts)), common(c), obj(parse_objective(o.objective, o.stage)),
        runtime_device(std::move(runtime)) {}

  bool rank0() const { return env.rank == 0; }
  int64_t batches_per_epoch() const {
    return loader ? loader->batches_per_epoch() : text_loader->batches_per_epoch();
  }

  void setup() {
    env = dist_env_from_environment();
    device = training_device(runtime_device, env);
    pg = std::make_unique<ProcessGroup>(env, o.dist_timeout, device);
    seed = common.seed;
    check_dataset();
    const ResumePoint rp =
        find_resume_point(o.run_dir, o.resume, options_json(o, obj, seed, env.world, precision),
                          {"world_size", "batch_size", "accumulate", "objective", "stage", "freeze"},
                          // checkpoints of earlier versions
                          ojson{{"stage", "vl"}, {"freeze", ojson::array()}});
    const CheckpointRef& ck = rp.checkpoint;
    if (rp.found()) {
      model::Bundle b = resume_model(rp, seed, st);
      model = b.model;
      config = b.config;
    } else {
      if (o.tokenizer.empty() && o.init.empty())
        throw UsageError("--tokenizer is required (the tok.json written beside the tokenizer model)");
      if (!o.init.empty()) {
        model::LoadOptions lo;
        lo.allow_partial = true;
        lo.replace_heads = true;
        lo.heads = obj.heads();
        model::Bundle b = model::load_bundle(o.init, lo);
        model = b.model;
        config = b.config;
        // The bundle's tokenizer goes on with its weights, unless --tokenizer names another.
        if (o.tokenizer.empty() && !b.tokenizer.empty() && rank0())
          copy_files(o.init, o.run_dir, {"tokenizer.model"});
      } else {
        config = model::load_config(o.config);
        config.heads = obj.heads();
      }
      if (!o.tokenizer.empty())
        adopt_tokenizer(o.tokenizer, config, model ? config.vocab_size : 0, rank0() ? o.run_dir : std::string());
      config.validate(o.config);
      if (!model) model = model::EveModel(config);
    }
    tok = tokenizer_of(config);
    if (o.grad_checkpoint) model->set_gradient_checkpointing(true);
    if (rank0() && model->gradient_checkpointing())
      log::info("gradient checkpointing: encoder layers recompute their activations in backward");
    msm.image_mask_ratio = o.image_mask_ratio;
    msm.text_mask_ratio = o.text_mask_ratio;
    msm.mim_weight = o.mim_weight;
    msm.mlm_weight = o.mlm_weight;
    msm.norm_target = config.mim_norm_target;

    if (rank0() && manifest.found && obj.stage != "text")
      warn_resolution(manifest, config.image_res,
                      st.resumed_from.empty() ? "image_res of the model config" : "image_res of " + st.resumed_from,
                      "prepare the images at that size (eve-prep --size " + std::to_string(config.image_res) +
                          ") or pre-train a config with an image_res near " + std::to_string(manifest.short_side));
    LoaderOptions lo = training_loader_options(o.data, o.batch_size / o.accumulate, env.rank, env.world, seed, config,
                                               resolve_threads(common.threads), o.prefetch, o.crop_scale_min,
                                               o.flip, o.rand_augment);
    if (obj.stage == "text") {
      text_loader = std::make_unique<TextLoader>(read_text_samples(o.data, o.split, config.vocab_size), lo);
    } else if (obj.stage == "image") {
      loader = std::make_unique<Loader>(read_image_samples(o.data, o.split), lo);
    } else {
      loader = std::make_unique<Loader>(read_pair_samples(o.data, o.split, config.vocab_size), lo);
    }
    if (obj.contrastive()) {
      std::unordered_map<std::string, int64_t> ids;
      for (const auto& sample : loader->sample_list())
        group_of_sample.push_back(ids.emplace(sample.images.front(), static_cast<int64_t>(ids.size())).first->second);
    }

    const int64_t per_epoch = batches_per_epoch();
    total = o.max_steps > 0 ? o.max_steps
                            : std::max<int64_t>(1, static_cast<int64_t>(o.epochs * per_epoch / o.accumulate));
    schedule.lr = o.lr;
    schedule.min_lr = o.min_lr;
    schedule.total = total;
    schedule.decay = o.decay;
    schedule.warmup = o.warmup < 1 ? static_cast<int64_t>(std::llround(o.warmup * total))
                                   : static_cast<int64_t>(o.warmup);

    model->to(device);  // before the optimiser, whose state is made beside each parameter
    model->train();
    AdamWOptions ao;
    ao.beta1 = o.beta1;
    ao.beta2 = o.beta2;
    ao.eps = o.eps;
    ao.weight_decay = o.weight_decay;
    opt = std::make_unique<AdamW>(trainable_parameters(), ao);
    if (ck.step >= 0) opt->load(ck.dir + "/optimizer.safetensors");
    std::vector<torch::Tensor> ps = model->parameters();
    pg->broadcast(ps);

    const int64_t micro = st.step * o.accumulate;
    if (loader) loader->seek(micro / per_epoch, micro % per_epoch);
    if (text_loader) text_loader->seek(micro / per_epoch, micro % per_epoch);
    if (rank0()) {
      fs::create_directories(o.run_dir);
      truncate_metrics(o.run_dir + "/metrics.jsonl", st.step);
      auto [d, nd] = opt->group_sizes();
      log::info("pretrain {} (stage {}): {} samples, {} micro-batches per epoch, {} steps of {} samples; "
                "rank {} of {}; {} parameters with weight decay, {} without; precision {}",
                obj.name(), obj.stage, loader ? loader->samples() : text_loader->samples(), per_epoch, total,
                o.batch_size, env.rank, env.world, d, nd, model::precision_name(precision));
    }
  }

  // What the dataset dir's manifest says against this run (caption pairs expected), and the
  // split must exist; before anything is loaded. (The prepared image size is checked against
  // the model's resolution once the model is known.)
  DatasetManifest manifest;
  void check_dataset() {
    manifest = read_dataset_manifest(o.data);
    const DatasetManifest& m = manifest;
    if (m.found) {
      if (m.task == "nlvr2")
        throw UsageError("--data " + o.data + " is an nlvr2 dataset (" + m.path + " \"task\": \"nlvr2\"): its records "
                         "are image pairs with a statement, which pre-training cannot read", {}, {},
                         "pre-train on image-caption pairs (eve-prep pairs, webdataset or retrieval); fine-tune on "
                         "nlvr2 with eve-finetune --task nlvr2");
      if (m.task == "vqa" && rank0())
        log::warn("--data {} is a vqa dataset ({} \"task\": \"vqa\"): eve-pretrain will take its questions "
                  "for captions; pre-train on image-caption pairs (eve-prep pairs, webdataset or retrieval) and "
                  "fine-tune on vqa with eve-finetune --task vqa",
                  o.data, m.path);
    }
    require_split(o.data, o.split,
                  o.split == "train" ? "the default --split train; give --split NAME for DATA/NAME.jsonl, e.g. "
                                       "--split train.ids for the records eve-tokenize encode wrote"
                                     : "--split " + o.split);
  }

  // Applies --freeze (no gradient for matching parameters) and returns the others.
  std::vector<std::pair<std::string, torch::Tensor>> trainable_parameters() {
    std::vector<int64_t> tensors(o.freeze.size()), numbers(o.freeze.size());
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (auto& kv : model->named_parameters()) {
      bool frozen = false;
      for (size_t i = 0; i < o.freeze.size(); ++i)
        if (glob_match(o.freeze[i], kv.key())) {
          ++tensors[i];
          numbers[i] += kv.value().numel();
          frozen = true;
        }
      if (frozen) kv.value().set_requires_grad(false);
      else out.emplace_back(kv.key(), kv.value());
    }
    for (size_t i = 0; i < o.freeze.size(); ++i) {
      if (tensors[i] == 0)
        throw UsageError("--freeze '" + o.freeze[i] + "' matches no parameter of the model", {}, {},
                         "names are the official state-dict keys, e.g. backbone.encoder.layers.0.attn.qkv.weight");
      if (rank0())
        log::info("--freeze '{}': {} tensors, {} parameters frozen", o.freeze[i], tensors[i], numbers[i]);
    }
    if (out.empty()) throw UsageError("--freeze leaves no parameter to train");
    return out;
  }

  Batch next_batch() {
    if (!census::reuse_batch()) return loader ? loader->next() : text_loader->next();
    if (!reused) {
      reused = loader ? loader->next() : text_loader->next();
      reused->images = on_device(reused->images);
      reused->images2 = on_device(reused->images2);
    }
    return *reused;
  }
  std::optional<Batch> reused;  // EVE_BENCH_REUSE_BATCH: the one batch every step trains on

  // Global denominators: every rank's share of the global count (so that averaging the
  // gradients over ranks gives the global mean).
  double share(double local_count) const {
    return std::max(1.0, pg->sum({local_count})[0]) / env.world;
  }

  torch::Tensor on_device(const torch::Tensor& t) const { return batch_to(t, device); }
  MsmMasks on_device(MsmMasks m) const {
    // The MLM labels stay on the host, where mlm_loss finds the chosen positions.
    for (torch::Tensor* t : {&m.ids_keep, &m.mim_mask, &m.mlm_ids}) *t = on_device(*t);
    return m;
  }

  // `b` is the loader's host batch: masks and group ids are drawn on the host, and what the
  // model reads is moved to the training device.
  MicroLoss micro_loss(const Batch& b, int64_t micro) {
    MicroLoss out;
    const double moe = config.moe_lossweight;
    const torch::Tensor images = on_device(b.images), ids = on_device(b.ids), mask = on_device(b.mask);
    if (obj.msm()) {
      MsmMasks m = make_msm_masks(b.ids, b.mask, config.num_patches(), msm, tok, seed, micro, b.first);
      auto counts = pg->sum({masked_patch_count(m), chosen_token_count(m)});
      MsmLoss l = msm_loss(*model, images, ids, mask, on_device(m), msm, counts[0] / env.world,
                           std::max(1.0, counts[1]) / env.world);
      out.total = l.total;
      out.parts = {{"mim", l.mim}, {"mlm", l.mlm}, {"aux", l.aux}};
      out.load = std::move(l.load);
      return out;
    }
    if (obj.stage == "image") {
      MsmMasks m = make_msm_masks(b.ids, b.mask, config.num_patches(), msm, tok, seed, micro, b.first);
      const double masked = share(masked_patch_count(m));
      m = on_device(std::move(m));
      model::EncoderInput in;
      in.image = images;
      in.ids_keep = m.ids_keep;
      model::EncoderOutput e = model->encode(model::Mode::vision, in);
      torch::Tensor mim = mim_loss(*model, e, images, m, msm.norm_target, masked);
      out.total = o.mim_weight * mim + moe * e.aux;
      out.parts = {{"mim", mim.detach()}, {"aux", e.aux.detach()}};
      out.load = std::move(e.load);
      return out;
    }
    // Contrastive parts (stage vl) and MLM (stage vl on the complete image, stage text alone).
    torch::Tensor aux_sum = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat64).device(device));
    int passes = 0;
    out.total = torch::zeros({}, torch::TensorOptions().device(device));
    if (obj.contrastive()) {
      torch::Tensor groups = torch::empty({b.samples.size(0)}, torch::kInt64);
      auto sample = b.samples.accessor<int64_t, 1>();
      auto group = groups.accessor<int64_t, 1>();
      for (int64_t i = 0; i < groups.size(0); ++i) group[i] = group_of_sample[static_cast<size_t>(sample[i])];
      ContrastiveOptions co;
      co.itc_weight = obj.itc ? o.itc_weight : 0.0;
      co.itm_weight = obj.itm ? o.itm_weight : 0.0;
      // The same on every rank and for any world size: N workers draw the negatives of 1 process.
      co.negative_seed = Rng(seed, kNegativeStream, static_cast<uint64_t>(micro)).next();
      ContrastiveLoss c = contrastive_loss(*model, images, ids, mask, on_device(groups), co, pg.get());
      out.total = c.total;
      if (obj.itc) out.parts.emplace_back("itc", c.itc);
      if (obj.itm) {
        out.parts.emplace_back("itm", c.itm);
        out.parts.emplace_back("itm_accuracy", c.itm_accuracy);
      }
      passes = co.itm_weight > 0 ? 3 : 2;
      aux_sum = c.aux.to(torch::kFloat64) * passes;
      out.load = std::move(c.load);
    }
    if (obj.mlm) {
      MsmMasks m = make_msm_masks(b.ids, b.mask, 0, msm, tok, seed, micro, b.first);
      const double chosen = share(chosen_token_count(m));
      m = on_device(std::move(m));
      model::EncoderInput in;
      in.image = images;  // undefined in the text stage
      in.text_ids = m.mlm_ids;
      in.text_mask = mask;
      model::EncoderOutput e = model->encode(obj.stage == "text" ? model::Mode::text : model::Mode::vl, in);
      torch::Tensor mlm = mlm_loss(*model, e, m.mlm_labels, chosen);
      out.total = out.total + o.mlm_weight * mlm + moe * e.aux;
      out.parts.emplace_back("mlm", mlm.detach());
      aux_sum = aux_sum + e.aux.detach().to(torch::kFloat64);
      ++passes;
      accumulate_load(out.load, e.load);
    }
    out.parts.emplace_back("aux", aux_sum / passes);
    return out;
  }

  ojson trainer_state(double loss) const {
    const int64_t micro = st.step * o.accumulate, per_epoch = batches_per_epoch();
    return ojson{{"format", "eve-trainer 1"},
                 {"step", st.step},
                 {"total_steps", total},
                 {"epoch", micro / per_epoch},
                 {"batch_in_epoch", micro % per_epoch},
                 {"samples_seen", st.step * o.batch_size},
                 {"loss", loss},
                 {"schedule", {{"lr", schedule.lr}, {"min_lr", schedule.min_lr}, {"warmup", schedule.warmup},
                               {"total", schedule.total}, {"decay", schedule.decay}}},
                 {"rng", {{"seed", seed},
                          {"scheme", "data order from (seed, epoch); augmentation from (seed, epoch, position); "
                                     "masks from (seed, micro-batch, position); torch generator reseeded from "
                                     "(seed, step, rank) before every step; ITM hard negatives from (seed, "
                                     "micro-batch)"}}},
                 {"options", options_json(o, obj, seed, env.world, precision)}};
  }

  int run() {
    // name, run dir, accumulate, total, log_every, save_every, batch size, clip, seed, quiet
    const StepLoopOptions lo{"pretrain",   o.run_dir, o.accumulate, total,       o.log_every, o.save_every,
                             o.batch_size, o.clip,    seed,         common.quiet};
    StepHooks hooks;
    hooks.micro_loss = [&](int64_t micro) {
      MicroLoss l;
      {
        model::Autocast autocast(precision, device.str());  // forward only; backward outside
        const Batch batch = next_batch();
        census::phase("forward");
        l = micro_loss(batch, micro);
      }
      if (!l.total.requires_grad())
        throw UsageError("the loss of --objective " + obj.name() + " depends on no trainable parameter", {}, {},
                         "--freeze froze everything it trains");
      return l;
    };
    // MoE load statistics only for the steps that log them.
    hooks.before_step = [&](bool logs) { model->set_want_load(logs); };
    hooks.write_checkpoint = [&](double loss) {
      write_checkpoint(o.run_dir, st.step, *model, *opt, trainer_state(loss), o.keep);
    };
    if (obj.contrastive()) {
      hooks.after_update = [&] { model->clamp_itc_temperature(); };
      hooks.itc_temperature = [&] { return model->itc_temperature(); };
    }
    return run_step_loop(lo, schedule, *opt, *pg, st, hooks);
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
  const std::string device = model::init_runtime(common);
  Trainer t(options, common, device);
  t.setup();
  return t.run();
}

}  // namespace eve::train
