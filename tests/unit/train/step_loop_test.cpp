// The trainers' shared step loop on a toy problem (one parameter vector, a quadratic loss):
// which steps write a metrics line and a checkpoint, the logged values as means over the
// micro-batches, and a loss that goes non-finite between two logging steps: the run fails
// naming the first bad step, no update happens from that step on, and no checkpoint is
// written after it.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "eve/core/error.h"
#include "eve/io/jsonl.h"
#include "eve/train/distributed.h"
#include "eve/train/step_loop.h"

namespace {

using namespace eve::train;
namespace fs = std::filesystem;

struct Toy {
  torch::Tensor w = torch::full({2}, 3.0).set_requires_grad(true);
  std::unique_ptr<AdamW> opt;
  ProcessGroup pg{DistEnv{}, 60};
  Schedule schedule;
  std::vector<int64_t> checkpoints;  // steps written
  int64_t bad_micro = -1;            // from this micro-batch on the loss is NaN
  int host_reads = 0;                // calls of the itc_temperature hook: one per host read
  LoopState st;
  std::string dir;

  explicit Toy(const std::string& name) {
    dir = (fs::temp_directory_path() / ("eve_step_loop_" + name)).string();
    fs::remove_all(dir);
    fs::create_directories(dir);
    opt = std::make_unique<AdamW>(std::vector<std::pair<std::string, torch::Tensor>>{{"w", w}}, AdamWOptions{});
    schedule.lr = 0.1;
    schedule.decay = "constant";
  }

  // Micro-batch m pulls w towards m + 1: each has its own loss, so the logged mean is checkable.
  MicroLoss loss(int64_t micro) const {
    MicroLoss l;
    torch::Tensor d = w - static_cast<double>(micro + 1);
    l.total = d.pow(2).sum();
    if (bad_micro >= 0 && micro >= bad_micro) l.total = l.total * std::numeric_limits<double>::quiet_NaN();
    l.parts = {{"half", l.total.detach() / 2}};
    return l;
  }

  int run(StepLoopOptions o) {
    o.name = "toy";
    o.run_dir = dir;
    o.quiet = true;
    schedule.total = o.total;
    StepHooks h;
    h.micro_loss = [&](int64_t micro) { return loss(micro); };
    h.write_checkpoint = [&](double) { checkpoints.push_back(st.step); };
    h.itc_temperature = [&] {
      ++host_reads;
      return torch::full({}, 0.07);
    };
    return run_step_loop(o, schedule, *opt, pg, st, h);
  }

  std::vector<eve::io::ordered_json> lines() const {
    std::vector<eve::io::ordered_json> out;
    std::ifstream in(dir + "/metrics.jsonl");
    for (std::string line; std::getline(in, line);) out.push_back(eve::io::ordered_json::parse(line));
    return out;
  }
};

TEST(TrainStepLoop, LinesAtLoggingStepsAndCheckpointsAtTheCadence) {
  Toy t("cadence");
  StepLoopOptions o;
  o.accumulate = 2;
  o.total = 5;
  o.log_every = 2;
  o.save_every = 2;
  // The loss the first step logs: the mean over micro-batches 0 and 1 at the start weights.
  const double first = ((3.0 - 1) * (3.0 - 1) * 2 + (3.0 - 2) * (3.0 - 2) * 2) / 2;
  EXPECT_EQ(t.run(o), 0);
  EXPECT_EQ(t.st.step, 5);
  const auto rows = t.lines();
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0]["step"], 2);
  EXPECT_EQ(rows[1]["step"], 4);
  EXPECT_EQ(rows[2]["step"], 5);
  for (const auto& r : rows) {
    EXPECT_DOUBLE_EQ(r["half"].get<double>() * 2, r["loss"].get<double>());
    for (const char* k : {"lr", "grad_norm", "samples_per_s", "expert_load"}) EXPECT_TRUE(r.contains(k)) << k;
  }
  EXPECT_EQ(t.checkpoints, (std::vector<int64_t>{2, 4, 5}));
  // Steps 1 and 3 neither log nor checkpoint: they read nothing back from the device.
  EXPECT_EQ(t.host_reads, 3);
  EXPECT_DOUBLE_EQ(rows[2]["itc_temp"].get<double>(), static_cast<double>(0.07f));
  EXPECT_EQ(t.st.saved, 5);

  // Logging every step, the first line holds the first step's mean.
  Toy u("cadence1");
  o.log_every = 1;
  u.run(o);
  EXPECT_DOUBLE_EQ(u.lines().at(0)["loss"].get<double>(), first);
}

TEST(TrainStepLoop, NonFiniteLossBetweenLoggingStepsFailsAtTheFirstBadStep) {
  // The weights after two good steps, for comparison.
  Toy good("good");
  StepLoopOptions o;
  o.total = 2;
  good.run(o);

  Toy t("nan");
  t.bad_micro = 2;  // step 3 is the first bad one
  o.total = 8;
  o.log_every = 4;
  o.save_every = 2;  // step 2 is saved; the read before saving step 4 finds the bad step 3
  try {
    t.run(o);
    FAIL() << "no error";
  } catch (const eve::Interrupted&) {
    FAIL() << "interrupted";
  } catch (const eve::Error& e) {
    EXPECT_NE(std::string(e.what()).find("the loss is not finite at step 3"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("the last good checkpoint is " + t.dir + "/checkpoint-00000002"),
              std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(torch::equal(t.w, good.w)) << t.w << good.w;  // steps 3 and 4 changed nothing
  EXPECT_EQ(t.checkpoints, std::vector<int64_t>{2});
  const auto rows = t.lines();
  ASSERT_FALSE(rows.empty());
  EXPECT_EQ(rows.back()["step"], 3);
  EXPECT_TRUE(rows.back()["loss"].is_null());
  for (size_t i = 0; i + 1 < rows.size(); ++i) EXPECT_FALSE(rows[i]["loss"].is_null());
}

}  // namespace
