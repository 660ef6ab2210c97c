// What eve-pretrain and eve-finetune share on their command lines: the options of a training
// run (TrainerOptions, a base of both programs' option structs) and the flags that set them,
// declared here once so that both programs spell, describe and check them the same way.
// Torch-free; the mains call these before their own program-specific flags.
//
// The optimisation flags are a template because the two programs hold them differently:
// eve-pretrain has plain values with defaults, eve-finetune std::optional overrides of its
// task recipe (unset: the recipe's value). Either way a flag that is given is the value used.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>

#include "eve/core/cli.h"

namespace eve::train {

struct TrainerOptions {
  std::string init;                  // --model: bundle to start from ("" = a new model of --config)
  std::string config = "eve-tiny";   // preset name or config.json when there is no --model
  std::string tokenizer;             // tok.json, the sentencepiece model, or a bundle dir
  std::string run_dir;               // -o: checkpoints, final bundle, metrics.jsonl
  int accumulate = 1;                // micro-batches per optimiser step
  bool grad_checkpoint = false;      // --grad-checkpoint: recompute activations in backward

  int64_t save_every = 0;            // 0: at the end (eve-finetune: also at each validation)
  int keep = 2;                      // checkpoint-<step> dirs kept
  bool resume = false;               // also automatic when run_dir holds a checkpoint
  int64_t log_every = 1;             // metrics.jsonl line every N steps
  int prefetch = 4;                  // micro-batches decoded ahead

  int nproc_per_node = 0;            // > 0: start this many local workers
  int dist_timeout = 60;             // seconds a collective or rendezvous may wait
};

// The option groups, in --help order.
inline constexpr const char* kModelGroup = "Model and output";
inline constexpr const char* kOptimGroup = "Optimisation";
inline constexpr const char* kAugmentGroup = "Augmentation";
inline constexpr const char* kCheckpointGroup = "Checkpoints";
inline constexpr const char* kDistributedGroup = "Distributed";

// -m/--model (old spelling --init), --config, --tokenizer, -o/--out.
inline void add_model_flags(CLI::App& app, TrainerOptions& o) {
  CLI::Option* model =
      app.add_option("-m,--model", o.init,
                     "Bundle to start from (default: a new model of --config)")
          ->group(kModelGroup);
  cli::add_deprecated_alias(&app, "--init", model);
  app.add_option("--config", o.config, "Model preset or config.json when there is no --model")
      ->capture_default_str()->group(kModelGroup);
  app.add_option("--tokenizer", o.tokenizer,
                 "The tokenizer: tok.json, the sentencepiece model beside it, or a bundle dir "
                 "(needed without --model)")
      ->group(kModelGroup);
  app.add_option("-o,--out", o.run_dir, "Run dir: checkpoints, the final bundle, metrics.jsonl")->group(kModelGroup);
}

namespace detail {

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

// A switch's default for --help: " (default: on)" for a plain bool, "" for an override.
template <class T>
std::string switch_default(const T& value) {
  if constexpr (is_optional<T>::value)
    return "";
  else
    return value ? " (default: on)" : " (default: off)";
}

// The default shown in --help: a plain value's own; an unset override says where its value
// comes from instead.
template <class T>
CLI::Option* shown(CLI::Option* opt, const T&) {
  if constexpr (is_optional<T>::value)
    return opt;
  else
    return opt->capture_default_str();
}

}  // namespace detail

// --batch-size, --accumulate, --max-steps, --epochs, --lr, --warmup, --decay, --clip,
// --weight-decay, --grad-checkpoint; then --crop-scale-min, --flip/--no-flip and
// --rand-augment/--no-rand-augment. `Options` derives from TrainerOptions and has the other
// fields as values (eve-pretrain) or std::optional overrides (eve-finetune).
template <class Options>
void add_optimisation_flags(CLI::App& app, Options& o) {
  using detail::shown;
  const char* g = kOptimGroup;
  shown(app.add_option("--batch-size", o.batch_size, "Global samples per optimiser step"), o.batch_size)->group(g);
  app.add_option("--accumulate", o.accumulate, "Micro-batches per step")->capture_default_str()->group(g);
  shown(app.add_option("--max-steps", o.max_steps, "Optimiser steps, overriding --epochs (0: --epochs decides)"), o.max_steps)->group(g);
  shown(app.add_option("--epochs", o.epochs, "Passes over the training data when --max-steps is not given"),
        o.epochs)->group(g);
  shown(app.add_option("--lr", o.lr, "Peak learning rate"), o.lr)->group(g);
  shown(app.add_option("--warmup", o.warmup, "Warm-up: fraction of the steps (< 1) or steps"), o.warmup)->group(g);
  shown(app.add_option("--decay", o.decay, "Learning-rate decay: cosine, linear or constant"), o.decay)->group(g);
  shown(app.add_option("--clip", o.clip, "Max gradient norm (0: off)"), o.clip)->group(g);
  shown(app.add_option("--weight-decay", o.weight_decay, "AdamW weight decay"), o.weight_decay)->group(g);
  app.add_flag("--grad-checkpoint", o.grad_checkpoint,
               "Recompute each encoder layer's activations in backward: less memory, more time")
      ->group(g);
  const char* a = kAugmentGroup;
  shown(app.add_option("--crop-scale-min", o.crop_scale_min, "Smallest random-crop area fraction"), o.crop_scale_min)
      ->group(a);
  cli::add_switch(&app, "flip", "Random horizontal flip" + detail::switch_default(o.flip), [&o](bool on) { o.flip = on; });
  cli::add_switch(&app, "rand-augment", "RandAugment, 2 ops at magnitude 7" + detail::switch_default(o.rand_augment),
                  [&o](bool on) { o.rand_augment = on; });
  for (const char* name : {"--flip", "--no-flip", "--rand-augment", "--no-rand-augment"}) app.get_option(name)->group(a);
}

// --save-every, --keep, --resume, --log-every, --prefetch; --nproc-per-node, --dist-timeout.
inline void add_run_flags(CLI::App& app, TrainerOptions& o, const std::string& save_every_zero) {
  const char* c = kCheckpointGroup;
  app.add_option("--save-every", o.save_every, "Checkpoint every N steps (0: " + save_every_zero + ")")
      ->capture_default_str()->group(c);
  app.add_option("--keep", o.keep, "Checkpoints kept")->capture_default_str()->group(c);
  app.add_flag("--resume", o.resume, "Continue the run in --out (automatic when it holds a checkpoint)")->group(c);
  app.add_option("--log-every", o.log_every, "metrics.jsonl line every N steps")->capture_default_str()->group(c);
  app.add_option("--prefetch", o.prefetch, "Micro-batches decoded ahead")->capture_default_str()->group(c);
  const char* x = kDistributedGroup;
  app.add_option("--nproc-per-node", o.nproc_per_node,
                 "Start N local workers (one per GPU with NCCL on --device cuda, else Gloo on loopback)")
      ->group(x);
  app.add_option("--dist-timeout", o.dist_timeout, "Seconds a rendezvous or collective may wait")
      ->capture_default_str()->group(x);
}

}  // namespace eve::train
