// The optimisation loop both trainers run (eve-pretrain and eve-finetune): per-step seeding
// of torch's generator, gradient accumulation over micro-batches, the loss check and stop
// agreement over ranks, gradient synchronisation and clipping, the learning-rate schedule,
// the metrics.jsonl line, checkpoint cadence, save-then-exit on SIGINT/SIGTERM, the
// checkpoint of a run that fails, and the resume checks. A trainer brings only what is its
// own: the loss of a micro-batch, the checkpoint writer and what happens after a step.
//
// Reading device data on the host stalls a GPU, so a step reads nothing back unless it
// writes a metrics line (--log-every, the last step), a checkpoint, validates or stops: the
// loss and its parts are summed on the device over the micro-batches and come back in one
// transfer on those steps. Whether every loss and gradient norm so far was finite is a 0-d
// device flag handed to the optimiser, so a bad step and every later one change nothing;
// the next read finds the first bad step and fails without writing a checkpoint. With
// several ranks one small all-reduce of the host's stop flag keeps them in step.
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "eve/model/bundle.h"
#include "eve/model/eve_model.h"
#include "eve/train/checkpoint.h"
#include "eve/train/optim.h"

namespace eve::train {

class ProcessGroup;

// One micro-batch's loss: the tensor to differentiate, the named parts to log (0-d tensors,
// the same names in the same order for every micro-batch) and the expert load of its passes.
struct MicroLoss {
  torch::Tensor total;
  std::vector<std::pair<std::string, torch::Tensor>> parts;
  std::vector<model::LayerLoad> load;
};

// Where a run starts: the newest complete checkpoint of its run dir and its trainer.json.
struct ResumePoint {
  CheckpointRef checkpoint;           // step -1: a new run
  nlohmann::ordered_json state;       // trainer.json of the checkpoint (null for a new run)
  bool found() const { return checkpoint.step >= 0; }
};

// The newest complete checkpoint of `run_dir`, checked against this run: each of `keys` in
// its "options" must equal the same key of `want`, else eve::UsageError "cannot resume DIR:
// it was trained with KEY X, this run has Y". `defaults` fills keys that checkpoints of
// earlier versions lack. `resume` (the --resume flag) demands a checkpoint.
ResumePoint find_resume_point(const std::string& run_dir, bool resume, const nlohmann::ordered_json& want,
                              const std::vector<std::string>& keys,
                              const nlohmann::ordered_json& defaults = nlohmann::ordered_json::object());

struct StepLoopOptions {
  std::string name;                 // the progress bar's label: "pretrain", "finetune"
  std::string run_dir;              // metrics.jsonl, checkpoints
  int accumulate = 1;               // micro-batches per step
  int64_t total = 1;                // steps of the whole run
  int64_t log_every = 1;            // a metrics.jsonl line every N steps (and at the last)
  int64_t save_every = 0;           // a checkpoint every N steps (0: see StepHooks)
  int64_t batch_size = 1;           // samples per step over all ranks (samples_per_s)
  double clip = 0;                  // max global gradient norm (0 = off)
  uint64_t seed = 0;                // torch's generator is reseeded from (seed, step, rank)
  bool quiet = false;               // no progress bar, no stop note
  bool expert_load_always = true;   // write "expert_load" also when no layer routes ({})
};

struct StepHooks {
  // Required: the loss of micro-batch `micro` (counted over the whole run); it fetches its
  // own batch.
  std::function<MicroLoss(int64_t micro)> micro_loss;
  // Required: rank 0 writes the checkpoint of the current step with its mean loss (no
  // collective: the loop adds the barrier).
  std::function<void(double loss)> write_checkpoint;
  // Optional, before every step: whether it writes a metrics line (the trainers compute
  // the MoE load statistics only then).
  std::function<void(bool logs)> before_step;
  // Optional, after every optimiser step (e.g. the ITC temperature clamp).
  std::function<void()> after_update;
  // Optional: logged as "itc_temp" after the parts.
  std::function<torch::Tensor()> itc_temperature;
  // Optional: whether the step just finished is followed by `evaluate` (with its mean loss).
  std::function<bool(int64_t step)> evaluates;
  std::function<void(double loss)> evaluate;
  // With save_every 0: a checkpoint after every evaluation (else only at the end).
  bool checkpoint_at_evaluation = false;
};

// The counters a trainer shares with the loop.
struct LoopState {
  int64_t step = 0;            // steps done
  int64_t saved = 0;           // the step of the last checkpoint written or resumed from
  std::string resumed_from;    // the checkpoint dir the run resumed from ("" = none)
};

// The model a found resume point holds (its bundle: weights and config); sets `seed` to the
// seed the run was started with and `state` to the checkpoint's step, resumed from and saved.
model::Bundle resume_model(const ResumePoint& rp, uint64_t& seed, LoopState& state);

// Trains from state.step to o.total. Returns 0; throws eve::Interrupted after a checkpoint
// when a signal asked to stop, and rethrows any failure after saving the last complete
// step. A non-finite loss fails with "the loss is not finite at step N" (N the first bad
// step; "the gradient norm" when only that was), naming the last good checkpoint.
int run_step_loop(const StepLoopOptions& o, const Schedule& schedule, AdamW& opt, ProcessGroup& pg,
                  LoopState& state, const StepHooks& hooks);

}  // namespace eve::train
