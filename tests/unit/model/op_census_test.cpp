#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include "eve/model/op_census.h"

namespace census = eve::census;

namespace {

// Runs `body` as one census step (count only, no file) and returns what it counted.
template <class F>
const census::StepCensus& census_of(F body, int64_t step = 7) {
  census::enable("");
  census::begin_step(step, false);
  body();
  census::end_step();
  return census::last_step();
}

}  // namespace

TEST(OpCensus, CountsKnownOpsSyncsAndPhases) {
  torch::Tensor a = torch::rand({4}), b = torch::rand({4}), z = torch::tensor({0.f, 1.f, 0.f, 2.f});
  const auto& s = census_of([&] {
    census::phase("forward");
    torch::Tensor c = a + b;
    c = c + a;
    c = c + b;
    census::phase("log");
    c.sum().item<float>();  // sum + item (its _local_scalar_dense nested)
    a[0].item<float>();     // select + item
    torch::nonzero(z);
  });
  EXPECT_EQ(s.step, 7);
  const census::Counts* fwd = s.phase("forward");
  ASSERT_NE(fwd, nullptr);
  EXPECT_EQ(fwd->ops, 3);
  EXPECT_EQ(fwd->top, 3);
  EXPECT_EQ(fwd->compute, 3);
  EXPECT_EQ(fwd->kernels, 3);
  EXPECT_EQ(fwd->syncs, 0);
  const census::Counts* log = s.phase("log");
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->top, 5);    // sum, item, select, item, nonzero
  EXPECT_EQ(log->syncs, 3);  // an item nesting _local_scalar_dense counts once
  EXPECT_EQ(s.sync_ops.at("aten::item"), 2);
  EXPECT_EQ(s.sync_ops.at("aten::nonzero"), 1);
  EXPECT_EQ(s.sync_ops.count("aten::_local_scalar_dense"), 0u);
  // Sites name the phase, the op and what ran just before it.
  EXPECT_EQ(s.sync_sites.at("log aten::item after aten::sum"), 1);
  EXPECT_EQ(s.sync_sites.at("log aten::item after aten::select"), 1);
  EXPECT_EQ(s.total().syncs, 3);
  EXPECT_EQ(s.phase("backward"), nullptr);
}

TEST(OpCensus, IgnoresOtherThreadsAndOpsOutsideTheStep) {
  torch::Tensor a = torch::rand({4});
  torch::Tensor outside = a * a;  // before the step: not counted
  const auto& s = census_of([&] {
    census::phase("forward");
    std::thread loader([&] {
      for (int i = 0; i < 10; ++i) (void)(a * 3.0).sum().item<float>();
    });
    loader.join();
    (void)(a * a);  // a scalar factor would add its wrapping ops: a tensor one is one op
  });
  EXPECT_EQ(s.total().ops, 1);
  EXPECT_EQ(s.total().syncs, 0);
  (void)(a * a);  // after the step: the last step's counts stay
  EXPECT_EQ(census::last_step().total().ops, 1);
}

TEST(OpCensus, BackwardAndCopiesToTheCpu) {
  torch::Tensor w = torch::rand({3}, torch::requires_grad());
  const auto& s = census_of([&] {
    census::phase("forward");
    torch::Tensor loss = (w * w).sum();
    census::phase("backward");
    loss.backward();
    census::phase("other");
    (void)w.detach().to(torch::kCPU, torch::kDouble);  // a .cpu()-style call
    (void)w.detach().to(torch::kDouble);               // a dtype change only
  });
  const census::Counts* fwd = s.phase("forward");
  const census::Counts* bwd = s.phase("backward");
  ASSERT_TRUE(fwd && bwd);
  EXPECT_EQ(fwd->top, 2);
  EXPECT_GT(bwd->ops, 0);
  EXPECT_GT(bwd->compute, 0);
  EXPECT_EQ(fwd->to_cpu + bwd->to_cpu, 0);
  // On the CPU no copy crosses devices: counted beside the syncs, never in them.
  EXPECT_EQ(s.phase("other")->to_cpu, 1);
  EXPECT_EQ(s.total().syncs, 0);
}

TEST(OpCensus, AppendsOneJsonLinePerStep) {
  const std::string path = testing::TempDir() + "op_census_test.jsonl";
  std::remove(path.c_str());
  census::enable(path);
  torch::Tensor a = torch::rand({4});
  for (int step = 3; step < 5; ++step) {
    census::begin_step(step, step == 4);
    census::phase("forward");
    (void)(a + a);
    census::phase("optimizer");
    (void)(a * a);
    (void)(a * a).sum().item<double>();
    census::end_step();
  }
  census::enable("");
  std::ifstream in(path);
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["step"], 3 + lines);
    EXPECT_EQ(j["logging"], lines == 1);
    EXPECT_EQ(j["phases"]["forward"]["ops"], 1);
    EXPECT_EQ(j["total"]["syncs"], 1);
    EXPECT_EQ(j["sync_ops"]["aten::item"], 1);
    EXPECT_EQ(j["sync_sites"][0][0], "optimizer aten::item after aten::sum");
    EXPECT_GT(j["optimizer_share"].get<double>(), 0.5);
    ++lines;
  }
  EXPECT_EQ(lines, 2);
  std::remove(path.c_str());
}

TEST(OpCensus, AutogradRecordsAndRealConjugatesAreNotCompute) {
  torch::Tensor w = torch::rand({16, 8, 8}, torch::requires_grad());
  torch::Tensor x = torch::rand({16, 8, 8});
  const auto& s = census_of([&] {
    census::phase("forward");
    torch::Tensor loss = torch::bmm(w, x).sum();
    census::phase("backward");
    loss.backward();
  });
  // The CPU's bmm resolves the (absent) conjugate of each of its matrices, and the backward
  // pass runs under autograd's records of its nodes: both are ops, neither is compute.
  EXPECT_GT(s.total().ops, s.total().compute);
  for (const auto& [name, n] : s.compute_ops) {
    EXPECT_NE(name.rfind("autograd::", 0), 0u) << name;
    EXPECT_NE(name, "aten::resolve_conj");
  }
  // Compute ops by name add up to the compute count; kernels by name to the kernel count.
  int64_t compute = 0, kernels = 0;
  for (const auto& [name, n] : s.compute_ops) compute += n;
  for (const auto& [name, n] : s.kernel_ops) kernels += n;
  EXPECT_EQ(compute, s.total().compute);
  EXPECT_EQ(kernels, s.total().kernels);
  EXPECT_EQ(s.compute_ops.at("aten::bmm"), 2);  // forward, and w's gradient in backward
  const std::string line = census::to_json_line(s);
  auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["compute_ops"][0].size(), 2u);
  EXPECT_LE(j["kernel_ops"].size(), 20u);
}
