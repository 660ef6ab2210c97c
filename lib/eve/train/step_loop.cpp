#include "eve/train/step_loop.h"

#include <chrono>
#include <cmath>
#include <fstream>
#include <memory>

#include "eve/core/error.h"
#include "eve/core/log.h"
#include "eve/core/progress.h"
#include "eve/core/rng.h"
#include "eve/core/signals.h"
#include "eve/io/file.h"
#include "eve/io/jsonl.h"
#include "eve/train/distributed.h"
#include "eve/train/run_common.h"

namespace eve::train {

using ojson = nlohmann::ordered_json;

namespace {
constexpr uint64_t kTorchStream = 0x746f726368ull;  // "torch"
}  // namespace

ResumePoint find_resume_point(const std::string& run_dir, bool resume, const ojson& want,
                              const std::vector<std::string>& keys, const ojson& defaults) {
  ResumePoint p;
  p.checkpoint = latest_checkpoint(run_dir);
  if (resume && !p.found()) throw UsageError("--resume: " + run_dir + " holds no complete checkpoint");
  if (!p.found()) return p;
  const std::string file = p.checkpoint.dir + "/trainer.json";
  p.state = io::parse_ordered_json(io::read_file(file), file);
  ojson have = p.state["options"];
  for (auto it = defaults.begin(); it != defaults.end(); ++it)
    if (!have.contains(it.key())) have[it.key()] = it.value();
  for (const auto& key : keys)
    if (have[key] != want[key])
      throw UsageError("cannot resume " + p.checkpoint.dir + ": it was trained with " + key + " " + have[key].dump() +
                           ", this run has " + want[key].dump(),
                       {}, {}, "resume with the same options, or use a new --out");
  return p;
}

namespace {

// One run of the loop: what stays between steps.
class Loop {
 public:
  Loop(const StepLoopOptions& o, const Schedule& schedule, AdamW& opt, ProcessGroup& pg, LoopState& st,
       const StepHooks& hooks)
      : o_(o), schedule_(schedule), opt_(opt), pg_(pg), st_(st), hooks_(hooks) {
    for (const auto& kv : opt.params()) params_.push_back(kv.second);
  }

  int run() {
    if (already_complete(st_.step, o_.total, st_.resumed_from, rank0())) return 0;
    if (rank0()) {
      if (!st_.resumed_from.empty())
        log::info("resuming from {} (step {} of {})", st_.resumed_from, st_.step, o_.total);
      note_intact_checkpoint(o_.run_dir, st_.resumed_from.empty() ? -1 : st_.step);
      if (!o_.quiet) set_training_stop_note();
      metrics_.open(o_.run_dir + "/metrics.jsonl", std::ios::app);
    }
    if (rank0() && !o_.quiet) {
      progress_ = std::make_unique<Progress>(o_.name, static_cast<uint64_t>(o_.total), "steps");
      progress_->resume_at(static_cast<uint64_t>(st_.step));
    }
    try {
      while (st_.step < o_.total) one_step();
    } catch (const Interrupted&) {
      throw;
    } catch (...) {
      // Every step taken stays: rank 0 writes the checkpoint of the last complete step.
      if (!diverged_)
        save_after_failure(st_.step, st_.saved, o_.run_dir, rank0(), [&] {
          if (rank0()) hooks_.write_checkpoint(last_loss_);
        });
      throw;
    }
    if (st_.saved != st_.step) save(last_loss_);
    if (progress_) progress_->finish(fmt::format("loss {:.4f}", last_loss_));
    return 0;
  }

 private:
  bool rank0() const { return pg_.rank() == 0; }

  void write_line(const ojson& j) {
    if (!rank0()) return;
    metrics_ << io::to_jsonl_line(j);
    metrics_.flush();
  }

  void save(double loss) {
    if (rank0()) hooks_.write_checkpoint(loss);
    pg_.barrier();
    st_.saved = st_.step;
  }

  void one_step() {
    const int64_t step = st_.step;
    const auto t0 = std::chrono::steady_clock::now();
    // phase: forward
    torch::manual_seed(Rng(o_.seed, kTorchStream, static_cast<uint64_t>(step * pg_.world() + pg_.rank())).next() >> 1);
    opt_.zero_grad();
    torch::Tensor loss_sum;
    std::vector<std::string> names;
    std::vector<torch::Tensor> part_sums;
    std::vector<model::LayerLoad> load;
    for (int a = 0; a < o_.accumulate; ++a) {
      MicroLoss l = hooks_.micro_loss(step * o_.accumulate + a);
      // phase: backward
      (l.total / o_.accumulate).backward();
      // Means over the micro-batches in float64, as the values are logged.
      torch::Tensor v = l.total.detach().to(torch::kFloat64) / o_.accumulate;
      loss_sum = loss_sum.defined() ? loss_sum + v : v;
      for (size_t i = 0; i < l.parts.size(); ++i) {
        torch::Tensor p = l.parts[i].second.detach().to(loss_sum.device(), torch::kFloat64) / o_.accumulate;
        if (names.size() <= i) {
          names.push_back(l.parts[i].first);
          part_sums.push_back(p);
        } else {
          part_sums[i] = part_sums[i] + p;
        }
      }
      accumulate_load(load, l.load);
    }
    // The loss and its parts are logged as means over the ranks (the global batch's values).
    std::vector<torch::Tensor> values{loss_sum};
    values.insert(values.end(), part_sums.begin(), part_sums.end());
    const torch::Tensor host = torch::stack(values).cpu();
    const double* h = host.data_ptr<double>();
    const double local_loss = h[0];
    std::vector<double> local{local_loss, std::isfinite(local_loss) ? 0.0 : 1.0,
                              signals::stop_requested() ? 1.0 : 0.0};
    local.insert(local.end(), h + 1, h + host.numel());
    const std::vector<double> totals = pg_.sum(local);
    const double loss = totals[0] / pg_.world();
    std::vector<double> parts(names.size());
    for (size_t i = 0; i < parts.size(); ++i) parts[i] = totals[3 + i] / pg_.world();
    if (totals[1] > 0) {
      // The step's metrics line, its loss null and every part as it came out (the JSON writer
      // makes a NaN or infinity null): it shows which part diverged.
      ojson j{{"step", step + 1}, {"loss", nullptr}};
      for (size_t i = 0; i < parts.size(); ++i) j[names[i]] = parts[i];
      j["lr"] = schedule_.at(step);
      write_line(j);
      diverged_ = true;
      throw Error("the loss is not finite at step " + std::to_string(step + 1), {}, {},
                  "lower --lr or check the data; the last good checkpoint stays in " + o_.run_dir);
    }
    // phase: clip
    const double gnorm = sync_gradients(params_, pg_, o_.clip);
    // phase: optimizer
    const double lr = schedule_.at(step);
    opt_.step(lr);
    if (hooks_.after_update) hooks_.after_update();
    ++st_.step;
    last_loss_ = loss;
    // phase: log
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (st_.step % o_.log_every == 0 || st_.step == o_.total) {
      ojson j{{"step", st_.step}, {"loss", loss}};
      for (size_t i = 0; i < parts.size(); ++i) j[names[i]] = parts[i];
      if (hooks_.itc_temperature) j["itc_temp"] = hooks_.itc_temperature().item<double>();
      j["lr"] = lr;
      j["grad_norm"] = gnorm;
      j["samples_per_s"] = static_cast<double>(o_.batch_size) / std::max(secs, 1e-9);
      if (o_.expert_load_always || !load.empty()) j["expert_load"] = expert_load_json(load);
      write_line(j);
    }
    if (progress_) progress_->set(static_cast<uint64_t>(st_.step));
    const bool evaluates = hooks_.evaluates && hooks_.evaluates(st_.step);
    if (evaluates) hooks_.evaluate(loss);
    const bool cadence = o_.save_every > 0 ? st_.step % o_.save_every == 0
                                           : hooks_.checkpoint_at_evaluation && evaluates;
    if (cadence && st_.step < o_.total) save(loss);
    if (totals[2] > 0 && st_.step < o_.total) {
      if (st_.saved != st_.step) save(loss);
      const int sig = signals::stop_signal() ? signals::stop_signal() : 15;
      throw Interrupted(sig, stopped_message(st_.step, o_.run_dir));
    }
  }

  const StepLoopOptions& o_;
  const Schedule& schedule_;
  AdamW& opt_;
  ProcessGroup& pg_;
  LoopState& st_;
  const StepHooks& hooks_;
  std::vector<torch::Tensor> params_;
  std::unique_ptr<Progress> progress_;
  std::ofstream metrics_;
  double last_loss_ = 0;
  bool diverged_ = false;
};

}  // namespace

int run_step_loop(const StepLoopOptions& o, const Schedule& schedule, AdamW& opt, ProcessGroup& pg,
                  LoopState& state, const StepHooks& hooks) {
  return Loop(o, schedule, opt, pg, state, hooks).run();
}

}  // namespace eve::train
