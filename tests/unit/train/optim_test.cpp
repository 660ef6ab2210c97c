// AdamW over flat buffers against a per-tensor reference, its skip flag, membership and
// aliasing rules, save/load, and clipping against a float64 reference.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>

#include "eve/train/distributed.h"
#include "eve/train/optim.h"

namespace {

using namespace eve::train;

// torch.optim.AdamW one tensor at a time, in float64 bookkeeping-free form: what the flat
// optimiser must reproduce.
struct Reference {
  struct Slot {
    torch::Tensor p, m, v;
    bool decay;
    double mult = 1.0;
  };
  std::map<std::string, Slot> slots;
  AdamWOptions o;
  int64_t steps = 0;

  void add(const std::string& name, const torch::Tensor& p) {
    slots[name] = {p.detach().clone(), torch::zeros_like(p), torch::zeros_like(p), !exempt_from_decay(name, p)};
  }
  // grads: name -> gradient; names without one are skipped.
  void step(double lr0, const std::map<std::string, torch::Tensor>& grads, bool apply = true) {
    ++steps;
    if (!apply) return;
    const double bc1 = 1 - std::pow(o.beta1, double(steps)), bc2 = 1 - std::pow(o.beta2, double(steps));
    for (auto& [name, s] : slots) {
      auto it = grads.find(name);
      if (it == grads.end()) continue;
      const torch::Tensor& g = it->second;
      const double lr = lr0 * s.mult;
      if (s.decay) s.p.mul_(1 - lr * o.weight_decay);
      s.m.mul_(o.beta1).add_(g, 1 - o.beta1);
      s.v.mul_(o.beta2).addcmul_(g, g, 1 - o.beta2);
      s.p.addcdiv_(s.m, (s.v.sqrt() / std::sqrt(bc2)).add_(o.eps), -lr / bc1);
    }
  }
};

struct Fixture {
  std::vector<std::pair<std::string, torch::Tensor>> params;
  Reference ref;
  std::map<std::string, torch::Tensor> by_name;

  Fixture() {
    torch::manual_seed(3);
    const std::vector<std::pair<std::string, std::vector<int64_t>>> shapes{
        {"enc.0.fc.weight", {6, 5}},  {"enc.0.fc.bias", {6}},      {"enc.1.fc.weight", {4, 6}},
        {"word_embedding.weight", {7, 3}}, {"head.weight", {2, 4}}, {"head.bias", {2}},
        {"unused.weight", {3, 3}},    {"late.weight", {5, 2}},     {"late.bias", {5}}};
    for (const auto& [name, shape] : shapes) {
      torch::Tensor p = torch::randn(shape).requires_grad_();
      params.emplace_back(name, p);
      by_name[name] = p;
      ref.add(name, p);
    }
  }
  // Gradients of step s: everything but unused.*, and late.* from step 3 on.
  std::map<std::string, torch::Tensor> grads(int s) const {
    std::map<std::string, torch::Tensor> g;
    torch::manual_seed(100 + s);
    for (const auto& [name, p] : params) {
      torch::Tensor x = torch::randn(p.sizes()) * (1 + s);
      if (name.rfind("unused", 0) == 0 || (name.rfind("late", 0) == 0 && s < 3)) continue;
      g[name] = x;
    }
    return g;
  }
  // Gradients through a backward pass, so that they accumulate into whatever grad exists.
  void backward(const std::map<std::string, torch::Tensor>& g) const {
    torch::Tensor loss = torch::zeros({});
    for (const auto& [name, x] : g) loss = loss + (by_name.at(name) * x).sum();
    loss.backward();
  }
  void expect_matches(double tol = 1e-6) const {
    for (const auto& [name, p] : params)
      EXPECT_TRUE(torch::allclose(p.detach(), ref.slots.at(name).p, tol, tol)) << name;
  }
};

TEST(AdamWFlat, MatchesThePerTensorReferenceAcrossMembershipChanges) {
  Fixture f;
  const torch::Tensor unused_before = f.by_name["unused.weight"].detach().clone();
  AdamW opt(f.params, {});
  EXPECT_EQ(opt.set_lr_multiplier({"head.weight", "head.bias"}, 10.0), 2u);
  f.ref.slots["head.weight"].mult = f.ref.slots["head.bias"].mult = 10.0;
  const void* grad_at = nullptr;
  for (int s = 1; s <= 6; ++s) {
    opt.zero_grad();
    const auto g = f.grads(s);
    f.backward(g);
    const double lr = 1e-2 / s;
    opt.step(lr);
    f.ref.step(lr, g);
    f.expect_matches();
    // decay x1, no-decay x1, decay x10, no-decay x10: four buffers once every gradient exists.
    EXPECT_EQ(opt.flat_groups(), 4u);
    if (s >= 4) EXPECT_EQ(f.by_name["enc.0.fc.weight"].grad().data_ptr(), grad_at) << "rebuilt at step " << s;
    grad_at = f.by_name["enc.0.fc.weight"].grad().data_ptr();
  }
  // A parameter whose gradient never came is neither decayed nor moved.
  EXPECT_TRUE(torch::equal(f.by_name["unused.weight"].detach(), unused_before));
  EXPECT_FALSE(f.by_name["unused.weight"].grad().defined());
  EXPECT_EQ(opt.steps(), 6);
}

TEST(AdamWFlat, ReplacedDataOrGradientsAndResetGradientsAreFollowed) {
  Fixture f;
  AdamW opt(f.params, {});
  // Steps 3 to 5 change membership (late.* join, head.weight leaves and comes back); step 6
  // changes nothing but the two tensors replaced behind the optimiser's back.
  for (int s = 1; s <= 7; ++s) {
    opt.zero_grad();
    auto g = f.grads(s);
    f.backward(g);
    if (s == 6) {
      torch::NoGradGuard ng;
      f.by_name["enc.0.fc.weight"].set_(f.by_name["enc.0.fc.weight"].clone());  // like Module::to
      f.by_name["enc.1.fc.weight"].mutable_grad() = f.by_name["enc.1.fc.weight"].grad().clone();
    }
    if (s == 4) {  // a reset gradient: the parameter sits this step out
      f.by_name["head.weight"].mutable_grad() = torch::Tensor();
      g.erase("head.weight");
    }
    opt.step(1e-2);
    f.ref.step(1e-2, g);
    f.expect_matches();
  }
}

TEST(AdamWFlat, ApplyFalseLeavesParametersAndMomentsBitUnchanged) {
  Fixture f, twin;
  AdamW opt(f.params, {}), plain(twin.params, {});
  for (int s = 1; s <= 4; ++s) {
    opt.zero_grad();
    plain.zero_grad();
    auto g = f.grads(s);
    const bool skip = s == 2;
    if (skip) {  // what a step whose gradients overflowed looks like
      g["enc.0.fc.weight"][0][0] = std::nan("");
      g["enc.1.fc.weight"][1][2] = INFINITY;
      g["head.bias"][0] = -INFINITY;
    }
    f.backward(g);
    twin.backward(g);
    std::vector<torch::Tensor> before;
    for (const auto& [name, p] : f.params) before.push_back(p.detach().clone());
    opt.step(1e-2, torch::tensor(!skip));
    plain.step(1e-2);  // the unflagged path, for bitwise agreement on applied steps
    f.ref.step(1e-2, g, !skip);
    for (size_t i = 0; i < f.params.size(); ++i) {
      const torch::Tensor& p = f.params[i].second;
      if (skip) EXPECT_TRUE(torch::equal(p.detach(), before[i])) << f.params[i].first;
      else if (s < 2) EXPECT_TRUE(torch::equal(p.detach(), twin.params[i].second.detach())) << f.params[i].first;
    }
    // Moments untouched by the skipped step: later steps still follow the reference.
    f.expect_matches();
  }
  EXPECT_THROW(opt.step(1e-2, torch::tensor({true, false})), std::exception);
}

TEST(AdamWFlat, SaveLoadRoundTripKeepsTheFormatAndContinues) {
  Fixture f;
  AdamW opt(f.params, {});
  for (int s = 1; s <= 3; ++s) {
    opt.zero_grad();
    const auto g = f.grads(s);
    f.backward(g);
    opt.step(1e-2);
    f.ref.step(1e-2, g);
  }
  const std::string path = (std::filesystem::temp_directory_path() / "eve_optim_flat.safetensors").string();
  opt.save(path);
  // A fresh optimiser over copies of the parameters, as a resumed run builds it.
  std::vector<std::pair<std::string, torch::Tensor>> copies;
  for (const auto& [name, p] : f.params) copies.emplace_back(name, p.detach().clone().requires_grad_());
  AdamW resumed(copies, {});
  resumed.load(path);
  std::filesystem::remove(path);
  EXPECT_EQ(resumed.steps(), 3);
  for (int s = 4; s <= 5; ++s) {
    const auto g = f.grads(s);
    resumed.zero_grad();
    torch::Tensor loss = torch::zeros({});
    for (const auto& [name, p] : copies)
      if (g.count(name)) loss = loss + (p * g.at(name)).sum();
    loss.backward();
    resumed.step(1e-2);
    f.ref.step(1e-2, g);
  }
  for (const auto& [name, p] : copies)
    EXPECT_TRUE(torch::allclose(p.detach(), f.ref.slots.at(name).p, 1e-6, 1e-6)) << name;
}

TEST(AdamWFlat, OneTensorUnderTwoNamesIsRefused) {
  torch::Tensor p = torch::zeros({2}).requires_grad_();
  EXPECT_THROW(AdamW({{"a", p}, {"b", p}}, {}), std::exception);
}

double norm64(const std::vector<torch::Tensor>& ps) {
  double sq = 0;
  for (const auto& p : ps)
    if (p.grad().defined()) sq += p.grad().to(torch::kFloat64).pow(2).sum().item<double>();
  return std::sqrt(sq);
}

TEST(ClipGradNorm, FloatNormWithinOnePPMOfFloat64AndScalesOnlyAboveTheLimit) {
  torch::manual_seed(9);
  std::vector<torch::Tensor> ps;
  for (int64_t n : {3000000, 1000, 1, 77}) {
    ps.push_back(torch::zeros({n}));
    ps.back().mutable_grad() = torch::randn({n}) * 0.01 + 0.003;
  }
  ps.push_back(torch::zeros({4}));  // no gradient: ignored
  const double want = norm64(ps);
  std::vector<torch::Tensor> before;
  for (size_t i = 0; i + 1 < ps.size(); ++i) before.push_back(ps[i].grad().clone());

  torch::Tensor n = clip_grad_norm(ps, 0);  // measure only
  EXPECT_EQ(n.dim(), 0);
  EXPECT_EQ(n.scalar_type(), torch::kFloat32);
  EXPECT_NEAR(n.item<double>() / want, 1.0, 1e-6);
  n = clip_grad_norm(ps, want * 1.01);  // below the limit: untouched
  for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(torch::equal(ps[i].grad(), before[i]));

  n = clip_grad_norm(ps, 1.0);
  EXPECT_NEAR(n.item<double>() / want, 1.0, 1e-6);
  const double scale = 1.0 / (want + 1e-6);
  for (size_t i = 0; i < before.size(); ++i)
    EXPECT_TRUE(torch::allclose(ps[i].grad(), before[i] * scale, 1e-6, 0)) << i;
  EXPECT_NEAR(norm64(ps), 1.0, 1e-6);

  // A NaN norm is returned as it is and scales nothing (NaN > limit is false).
  const torch::Tensor kept = ps[0].grad().clone();
  ps[1].grad()[0] = std::nan("");
  EXPECT_TRUE(std::isnan(clip_grad_norm(ps, 1.0).item<double>()));
  EXPECT_TRUE(torch::equal(ps[0].grad(), kept));
  EXPECT_EQ(clip_grad_norm({torch::zeros({2})}, 1.0).item<double>(), 0.0);
}

TEST(ClipGradNorm, FlatBuffersReduceAsOneSpanEachAndAgreeWithTheMethod) {
  Fixture f, twin;
  AdamW opt(f.params, {}), other(twin.params, {});
  for (auto* x : {&f, &twin}) x->backward(x->grads(4));
  std::vector<torch::Tensor> ps, qs;
  for (const auto& kv : f.params) ps.push_back(kv.second);
  for (const auto& kv : twin.params) qs.push_back(kv.second);
  EXPECT_EQ(gradient_spans(ps).size(), 8u);  // separate gradients before the first step
  opt.step(0.0);
  other.step(0.0);
  EXPECT_EQ(gradient_spans(ps).size(), opt.flat_groups());
  const double want = norm64(ps);
  const torch::Tensor a = clip_grad_norm(ps, want / 2), b = other.clip_grad_norm(want / 2);
  EXPECT_NEAR(a.item<double>() / want, 1.0, 1e-6);
  EXPECT_EQ(a.item<float>(), b.item<float>());
  for (size_t i = 0; i < ps.size(); ++i)
    if (ps[i].grad().defined()) EXPECT_TRUE(torch::equal(ps[i].grad(), qs[i].grad())) << i;
  EXPECT_NEAR(norm64(ps), want / 2, want * 1e-6);
}

TEST(SyncGradients, OneProcessGivesZeroGradientsAndClipsInPlace) {
  Fixture f;
  AdamW opt(f.params, {});
  std::vector<torch::Tensor> ps;
  for (const auto& kv : f.params) ps.push_back(kv.second);
  f.backward(f.grads(1));
  ProcessGroup alone(DistEnv{}, 5);
  torch::Tensor n = sync_gradients(ps, alone, 0.5);
  EXPECT_EQ(n.dim(), 0);
  for (const auto& p : ps) ASSERT_TRUE(p.grad().defined());
  EXPECT_TRUE(torch::equal(f.by_name["unused.weight"].grad(), torch::zeros({3, 3})));
  EXPECT_NEAR(norm64(ps), 0.5, 1e-6);
  opt.step(1e-3);  // every parameter joins now
  const void* at = f.by_name["late.bias"].grad().data_ptr();
  opt.zero_grad();
  f.backward(f.grads(2));
  const double want = norm64(ps);
  n = sync_gradients(ps, alone, 0);
  EXPECT_NEAR(n.item<double>() / want, 1.0, 1e-6);
  EXPECT_EQ(f.by_name["late.bias"].grad().data_ptr(), at);
}

// The trainers' form: the first step of a process (a fresh or a resumed run) already sums
// the norm over the flat buffers, so it equals, bit for bit, the norm a long-running
// optimiser computes for the same gradients.
TEST(SyncGradients, ThroughTheOptimiserTheNormIgnoresWhenBuffersWereBuilt) {
  Fixture f, twin;
  AdamW running(f.params, {}), fresh(twin.params, {});
  ProcessGroup alone(DistEnv{}, 5);
  f.backward(f.grads(1));
  sync_gradients(running, alone, 0);
  running.step(0.0);  // builds its buffers; lr 0 leaves the values as twin's
  running.zero_grad();
  f.backward(f.grads(2));
  twin.backward(twin.grads(2));  // fresh gradients, not yet in any buffer
  const torch::Tensor a = sync_gradients(running, alone, 0.5), b = sync_gradients(fresh, alone, 0.5);
  EXPECT_EQ(a.item<float>(), b.item<float>());
  EXPECT_EQ(fresh.flat_groups(), 2u);
  for (size_t i = 0; i < f.params.size(); ++i)
    EXPECT_TRUE(torch::equal(f.params[i].second.grad(), twin.params[i].second.grad())) << f.params[i].first;
}

}  // namespace
