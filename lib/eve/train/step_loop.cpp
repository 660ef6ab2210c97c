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
#include "eve/model/op_census.h"
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

model::Bundle resume_model(const ResumePoint& rp, uint64_t& seed, LoopState& state) {
  seed = rp.state["options"]["seed"].get<uint64_t>();
  state.step = rp.state["step"].get<int64_t>();
  state.resumed_from = rp.checkpoint.dir;
  state.saved = state.step;
  return model::load_bundle(rp.checkpoint.dir);
}

namespace {

// One run of the loop: what stays between steps.
class Loop {
 public:
  Loop(const StepLoopOptions& o, const Schedule& schedule, AdamW& opt, ProcessGroup& pg, LoopState& st,
       const StepHooks& hooks)
      : o_(o), schedule_(schedule), opt_(opt), pg_(pg), st_(st), hooks_(hooks) {
    if (!opt.params().empty()) device_ = opt.params().front().second.device();
    ok_ = torch::ones({}, torch::TensorOptions().dtype(torch::kBool).device(device_));
    first_bad_ = torch::zeros({}, torch::TensorOptions().dtype(torch::kInt64).device(device_));
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
      // Every step taken stays: rank 0 writes the checkpoint of the last complete step, unless
      // a loss went non-finite since the last host read (the weights are not that step's).
      if (!diverged_ && weights_good())
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

  bool weights_good() const {
    try {
      return ok_.item<bool>();
    } catch (const std::exception&) {
      return false;
    }
  }

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

  // What a host read brings back: the step's mean loss and parts over the ranks, the
  // gradient norm, the ITC temperature and rank 0's expert load.
  struct HostValues {
    double loss = 0, grad_norm = 0, itc_temp = 0;
    std::vector<double> parts;
    std::vector<model::LayerLoad> load;
  };

  // The one transfer of a step that needs the host (a logging step, a checkpoint, an
  // evaluation, a stop): `values` = [loss, parts...] of the step, with the finite flag, the
  // first bad step and its values. Fails when a loss so far was not finite.
  HostValues read(const torch::Tensor& values, const torch::Tensor& grad_norm, const std::vector<model::LayerLoad>& load) {
    const auto f64 = [&](const torch::Tensor& t) { return t.detach().to(device_, torch::kFloat64).reshape({-1}); };
    std::vector<torch::Tensor> pieces{values, f64(grad_norm), f64(ok_), f64(first_bad_), bad_values_};
    if (hooks_.itc_temperature) pieces.push_back(f64(hooks_.itc_temperature()));
    for (const auto& ll : load)
      if (ll.load.top1.defined()) pieces.push_back(f64(ll.load.top1));
    const torch::Tensor host = torch::cat(pieces).cpu();
    const double* h = host.data_ptr<double>();
    const size_t n = static_cast<size_t>(values.numel());
    // [loss, parts..., bad, bad values...] summed over ranks; the first bad step is the
    // smallest of the ranks' (each rank's own slot, 0 = none).
    std::vector<double> shared(h, h + n);
    shared.push_back(h[n + 1] > 0 ? 0.0 : 1.0);
    shared.insert(shared.end(), h + n + 3, h + 2 * n + 3);
    std::vector<double> firsts(static_cast<size_t>(pg_.world()), 0.0);
    firsts[static_cast<size_t>(pg_.rank())] = h[n + 2];
    shared.insert(shared.end(), firsts.begin(), firsts.end());
    if (pg_.world() > 1) shared = pg_.sum(shared);
    const double world = pg_.world();
    HostValues v;
    v.loss = shared[0] / world;
    for (size_t i = 1; i < n; ++i) v.parts.push_back(shared[i] / world);
    if (shared[n] > 0) {
      int64_t first = 0;
      for (size_t r = 0; r < firsts.size(); ++r) {
        const auto f = static_cast<int64_t>(shared[2 * n + 1 + r]);
        if (f > 0 && (first == 0 || f < first)) first = f;
      }
      fail_not_finite(first, std::vector<double>(shared.begin() + static_cast<std::ptrdiff_t>(n) + 1,
                                                 shared.begin() + static_cast<std::ptrdiff_t>(2 * n) + 1));
    }
    v.grad_norm = h[n];
    size_t at = 2 * n + 3;
    if (hooks_.itc_temperature) v.itc_temp = h[at++];
    for (const auto& ll : load) {
      if (!ll.load.top1.defined()) continue;  // not computed on this step
      model::LayerLoad l = ll;
      l.load.top1 = host.narrow(0, static_cast<int64_t>(at), ll.load.top1.numel()).view(ll.load.top1.sizes());
      at += static_cast<size_t>(ll.load.top1.numel());
      v.load.push_back(std::move(l));
    }
    return v;
  }

  // The first step whose loss or gradient norm was not finite: its metrics line (the loss
  // null when it was the loss, every part as it came out: the JSON writer makes a NaN or
  // infinity null, which shows the part that diverged), then the error. No checkpoint is
  // written: the weights stopped changing at that step.
  [[noreturn]] void fail_not_finite(int64_t step, const std::vector<double>& values) {
    diverged_ = true;
    const bool loss_bad = !std::isfinite(values.at(0) / pg_.world());
    ojson j{{"step", step}, {"loss", loss_bad ? ojson(nullptr) : ojson(values[0] / pg_.world())}};
    for (size_t i = 0; i < names_.size(); ++i) j[names_[i]] = values[i + 1] / pg_.world();
    j["lr"] = schedule_.at(step - 1);
    write_line(j);
    char last[32];
    std::snprintf(last, sizeof last, "checkpoint-%08lld", static_cast<long long>(st_.saved));
    throw Error(std::string(loss_bad ? "the loss" : "the gradient norm") + " is not finite at step " +
                    std::to_string(step),
                {}, {},
                "lower --lr or check the data; " +
                    (st_.saved > 0 ? "the last good checkpoint is " + o_.run_dir + "/" + last
                                   : "no checkpoint was written before it"));
  }

  // Whether the step that ends at `now` writes a metrics line.
  bool logs_at(int64_t now) const { return now % o_.log_every == 0 || now == o_.total; }

  void one_step() {
    const int64_t step = st_.step;
    if (since_log_ == 0) log_start_ = std::chrono::steady_clock::now();
    census::begin_step(step + 1, logs_at(step + 1));
    if (hooks_.before_step) hooks_.before_step(logs_at(step + 1));
    census::phase("forward");
    torch::manual_seed(Rng(o_.seed, kTorchStream, static_cast<uint64_t>(step * pg_.world() + pg_.rank())).next() >> 1);
    opt_.zero_grad();
    torch::Tensor loss_sum;
    std::vector<torch::Tensor> part_sums;
    std::vector<model::LayerLoad> load;
    for (int a = 0; a < o_.accumulate; ++a) {
      census::phase("forward");
      MicroLoss l = hooks_.micro_loss(step * o_.accumulate + a);
      census::phase("backward");
      (l.total / o_.accumulate).backward();
      census::phase("other");
      // Means over the micro-batches in float64 on the device, as the values are logged.
      torch::Tensor v = l.total.detach().to(torch::kFloat64) / o_.accumulate;
      loss_sum = loss_sum.defined() ? loss_sum + v : v;
      for (size_t i = 0; i < l.parts.size(); ++i) {
        torch::Tensor p = l.parts[i].second.detach().to(device_, torch::kFloat64) / o_.accumulate;
        if (names_.size() <= i) names_.push_back(l.parts[i].first);
        if (part_sums.size() <= i) part_sums.push_back(p);
        else part_sums[i] = part_sums[i] + p;
      }
      accumulate_load(load, l.load);
    }
    std::vector<torch::Tensor> parts{loss_sum.to(device_)};
    parts.insert(parts.end(), part_sums.begin(), part_sums.end());
    const torch::Tensor values = torch::stack(parts);
    census::phase("clip");
    // Through the optimiser's flat buffers: the norm sums the same layout on every step,
    // so a resumed run stays bit-identical.
    const torch::Tensor grad_norm = sync_gradients(opt_, pg_, o_.clip);
    // Whether every step so far had a finite loss and gradient norm, kept on the device: a
    // bad step and every later one change nothing, and the first bad one is remembered
    // until the next host read reports it.
    const torch::Tensor step_ok = torch::isfinite(values[0]).logical_and(torch::isfinite(grad_norm));
    const torch::Tensor now_bad = ok_.logical_and(step_ok.logical_not());
    first_bad_ = torch::where(now_bad, torch::full({}, step + 1, first_bad_.options()), first_bad_);
    bad_values_ = bad_values_.defined() ? torch::where(now_bad, values, bad_values_) : torch::where(now_bad, values, torch::zeros_like(values));
    ok_ = ok_.logical_and(step_ok);
    census::phase("optimizer");
    const double lr = schedule_.at(step);
    opt_.step(lr, ok_);
    if (hooks_.after_update) hooks_.after_update();
    ++st_.step;
    ++since_log_;
    census::phase("log");
    // The stop flag is host state; ranks agree on it every step with one small all-reduce.
    bool stop = signals::stop_requested();
    if (pg_.world() > 1) stop = pg_.sum({stop ? 1.0 : 0.0})[0] > 0;
    const int64_t now = st_.step;
    const bool logs = logs_at(now);
    const bool evaluates = hooks_.evaluates && hooks_.evaluates(now);
    const bool cadence =
        (o_.save_every > 0 ? now % o_.save_every == 0 : hooks_.checkpoint_at_evaluation && evaluates) && now < o_.total;
    const bool stops = stop && now < o_.total;
    if (logs || evaluates || cadence || stops) {
      const HostValues v = read(values, grad_norm, load);
      last_loss_ = v.loss;
      if (logs) {
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - log_start_).count();
        ojson j{{"step", now}, {"loss", v.loss}};
        for (size_t i = 0; i < v.parts.size(); ++i) j[names_[i]] = v.parts[i];
        if (hooks_.itc_temperature) j["itc_temp"] = v.itc_temp;
        j["lr"] = lr;
        j["grad_norm"] = v.grad_norm;
        // Over the steps since the last line: on a GPU a step's own time is only its launch.
        j["samples_per_s"] = static_cast<double>(o_.batch_size * since_log_) / std::max(secs, 1e-9);
        if (o_.expert_load_always || !v.load.empty()) j["expert_load"] = expert_load_json(v.load);
        write_line(j);
        since_log_ = 0;
      }
      if (progress_) {
        // The progress display shows the loss of the last step read back; steps between
        // reads show it again rather than stall the device for their own.
        progress_->set_loss(v.loss);
        progress_->set(static_cast<uint64_t>(now));
      }
      if (evaluates) hooks_.evaluate(v.loss);
      if (cadence) save(v.loss);
      if (stops) {
        if (st_.saved != now) save(v.loss);
        const int sig = signals::stop_signal() ? signals::stop_signal() : 15;
        throw Interrupted(sig, stopped_message(now, o_.run_dir));
      }
    } else if (progress_) {
      progress_->set(static_cast<uint64_t>(now));
    }
    census::end_step();
  }

  const StepLoopOptions& o_;
  const Schedule& schedule_;
  AdamW& opt_;
  ProcessGroup& pg_;
  LoopState& st_;
  const StepHooks& hooks_;
  std::unique_ptr<Progress> progress_;
  std::ofstream metrics_;
  torch::Device device_{torch::kCPU};   // where the parameters (and the flags below) live
  torch::Tensor ok_;          // 0-d bool: every step so far had a finite loss and gradient norm
  torch::Tensor first_bad_;   // 0-d int64: the first step that did not (0 = none)
  torch::Tensor bad_values_;  // [loss, parts...] of that step
  std::vector<std::string> names_;  // of the parts
  int64_t since_log_ = 0;     // steps since the last metrics line
  std::chrono::steady_clock::time_point log_start_;
  double last_loss_ = 0;      // the mean loss of the last step read on the host
  bool diverged_ = false;
};

}  // namespace

int run_step_loop(const StepLoopOptions& o, const Schedule& schedule, AdamW& opt, ProcessGroup& pg,
                  LoopState& state, const StepHooks& hooks) {
  return Loop(o, schedule, opt, pg, state, hooks).run();
}

}  // namespace eve::train
