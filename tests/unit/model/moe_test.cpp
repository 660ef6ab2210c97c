// The modality-aware MoE: routing, capacity, aux loss, and agreement of the sparse
// dispatch with the GShard dense oracle (with and without dropped claims).
#include <malloc.h>

#include "common/model_test_util.h"

#include "eve/model/runtime.h"

namespace eve::model::test {
namespace {

struct MoeCase {
  MoE moe{nullptr};
  torch::Tensor x, modality;
};

MoeCase make_case(int64_t S, int64_t E, uint64_t seed) {
  torch::manual_seed(seed);
  MoeCase c;
  c.moe = MoE(16, 32, E, /*type_route=*/true, "quick_gelu");
  for (auto& p : c.moe->parameters()) {
    torch::NoGradGuard ng;
    p.normal_(0, 0.3);
  }
  c.x = torch::randn({S, 16});
  c.modality = (torch::arange(S) % 3 == 0).to(torch::kLong);
  return c;
}

TEST(MoE, CapacityFormula) {
  EXPECT_EQ(moe_capacity(100, 32, 1.0, 4), 7);    // ceil(200 / 32)
  EXPECT_EQ(moe_capacity(10, 32, 1.0, 4), 4);     // the floor
  EXPECT_EQ(moe_capacity(4096, 32, 1.0, 4), 256);
  EXPECT_EQ(moe_capacity(100, 8, 0.5, 1), 13);    // ceil(12.5)
}

TEST(MoE, RoutingSlotsAndAuxLossByHand) {
  // 5 tokens, 3 experts; logits chosen so the ranking is obvious.
  torch::Tensor logits = torch::tensor({{3.f, 2.f, 0.f},
                                        {3.f, 0.f, 2.f},
                                        {0.f, 3.f, 2.f},
                                        {3.f, 2.f, 0.f},
                                        {2.f, 0.f, 3.f}});
  Routing r = route(logits, /*capacity=*/2, /*noise=*/false);
  EXPECT_TRUE(torch::equal(r.top1, torch::tensor({0, 0, 1, 0, 2}, torch::kLong)));
  EXPECT_TRUE(torch::equal(r.top2, torch::tensor({1, 2, 2, 1, 0}, torch::kLong)));
  // Expert 0: top-1 claims of tokens 0, 1, 3 take slots 0, 1, 2; token 4's top-2 slot 3.
  EXPECT_TRUE(torch::equal(r.slot1, torch::tensor({0, 1, 0, 2, 0}, torch::kLong)));
  EXPECT_TRUE(torch::equal(r.slot2, torch::tensor({1, 1, 2, 2, 3}, torch::kLong)));
  EXPECT_TRUE(torch::equal(r.keep1, torch::tensor({true, true, true, false, true})));
  EXPECT_TRUE(torch::equal(r.keep2, torch::tensor({true, true, false, false, false})));
  // Token 3 lost both claims: weight 0 everywhere; token 2 keeps only its first: weight 1.
  EXPECT_FLOAT_EQ(r.w1[3].item<float>(), 0.f);
  EXPECT_FLOAT_EQ(r.w2[3].item<float>(), 0.f);
  EXPECT_FLOAT_EQ(r.w1[2].item<float>(), 1.f);
  torch::Tensor g = torch::softmax(logits, 1);
  EXPECT_NEAR(r.w1[0].item<float>(), (g[0][0] / (g[0][0] + g[0][1])).item<float>(), 1e-6);
  // aux = E * sum_e mean(gates[:, e]) * frac(top1 == e)
  torch::Tensor frac = torch::tensor({3.f / 5, 1.f / 5, 1.f / 5});
  EXPECT_NEAR(r.aux.item<float>(), (3 * (g.mean(0) * frac).sum()).item<float>(), 1e-6);
}

TEST(MoE, SparseMatchesDenseWithoutDrops) {
  MoeCase c = make_case(40, 6, 21);
  RoutingOptions opt;
  opt.dispatch = Dispatch::sparse;
  MoeResult s = c.moe->forward(c.x, c.modality, opt);
  opt.dispatch = Dispatch::dense;
  MoeResult d = c.moe->forward(c.x, c.modality, opt);
  EXPECT_LE((s.y - d.y).abs().max().item<double>(), 1e-5);
  EXPECT_TRUE(torch::equal(s.load.kept, s.load.claims));
  EXPECT_EQ(s.load.claims.sum().item<int64_t>(), 80);
  // Gradients agree too.
  auto grads = [&](Dispatch disp) {
    c.moe->zero_grad();
    torch::Tensor x = c.x.clone().requires_grad_(true);
    RoutingOptions o;
    o.dispatch = disp;
    (c.moe->forward(x, c.modality, o).y.pow(2).sum()).backward();
    return std::make_pair(x.grad().clone(), c.moe->wg->weight.grad().clone());
  };
  auto gs = grads(Dispatch::sparse), gd = grads(Dispatch::dense);
  // (relative to the gradients' scale: y^2 summed over 40 tokens gives gradients ~10)
  EXPECT_LE((gs.first - gd.first).abs().max().item<double>(), 1e-5 * gs.first.abs().max().item<double>());
  EXPECT_LE((gs.second - gd.second).abs().max().item<double>(), 1e-5 * gs.second.abs().max().item<double>());
}

TEST(MoE, SparseAndDenseDropTheSameClaims) {
  MoeCase c = make_case(64, 4, 22);
  RoutingOptions opt;
  opt.capacity = moe_capacity(64, 4, 0.5, 4);  // 16 slots for 128 claims over 4 experts
  opt.dispatch = Dispatch::sparse;
  MoeResult s = c.moe->forward(c.x, c.modality, opt);
  opt.dispatch = Dispatch::dense;
  MoeResult d = c.moe->forward(c.x, c.modality, opt);
  EXPECT_LT(s.load.kept.sum().item<int64_t>(), 128);
  EXPECT_TRUE(torch::equal(s.load.kept, d.load.kept));
  EXPECT_LE(s.load.kept.max().item<int64_t>(), 16);
  EXPECT_LE((s.y - d.y).abs().max().item<double>(), 1e-5);
  // Tokens whose both claims were dropped get exactly zero from either dispatch.
  torch::Tensor xt = c.x + torch::stack({c.moe->vision_embed, c.moe->text_embed}).index_select(0, c.modality);
  Routing r = route(torch::linear(xt, c.moe->wg->weight), opt.capacity, false);
  torch::Tensor lost = r.keep1.logical_not() & r.keep2.logical_not();
  ASSERT_GT(lost.sum().item<int64_t>(), 0);
  EXPECT_EQ(s.y.index({lost}).abs().max().item<float>(), 0.f);
  EXPECT_EQ(d.y.index({lost}).abs().max().item<float>(), 0.f);
}

TEST(MoE, ModalityTagChangesRouting) {
  MoeCase c = make_case(32, 4, 23);
  RoutingOptions opt;
  MoeResult a = c.moe->forward(c.x, torch::zeros({32}, torch::kLong), opt);
  MoeResult b = c.moe->forward(c.x, torch::ones({32}, torch::kLong), opt);
  EXPECT_GT((a.y - b.y).abs().max().item<double>(), 1e-3);
}

TEST(MoE, NoiseOnlyWhenAsked) {
  MoeCase c = make_case(32, 8, 24);
  RoutingOptions opt;
  MoeResult a = c.moe->forward(c.x, c.modality, opt);
  MoeResult b = c.moe->forward(c.x, c.modality, opt);
  EXPECT_TRUE(torch::equal(a.y, b.y));
  opt.noise = true;
  bool differs = false;
  for (int i = 0; i < 5 && !differs; ++i)
    differs = !torch::equal(c.moe->forward(c.x, c.modality, opt).load.claims, a.load.claims);
  EXPECT_TRUE(differs);
}

TEST(MoE, RouterStaysFloat32UnderBf16Autocast) {
  // The experts may run in bf16, but which experts a token goes to and the aux loss are
  // the float32 router's (docs/architecture.md, "Mixture of experts").
  MoeCase c = make_case(512, 8, 25);
  RoutingOptions opt;
  MoeResult full = c.moe->forward(c.x, c.modality, opt);
  MoeResult mixed;
  {
    model::Autocast bf16(model::Precision::bf16, "cpu");
    mixed = c.moe->forward(c.x, c.modality, opt);
  }
  EXPECT_FALSE(torch::equal(mixed.y, full.y));  // autocast really ran (the experts in bf16)
  EXPECT_TRUE(torch::equal(mixed.load.top1, full.load.top1));
  EXPECT_TRUE(torch::equal(mixed.load.claims, full.load.claims));
  EXPECT_EQ(mixed.aux.item<double>(), full.aux.item<double>());
}

TEST(MoE, ModelInferenceIsDeterministicAndIndependentOfBatchMates) {
  ModelConfig c = tiny_config();
  torch::manual_seed(6);
  EveModel m(c);
  m->eval();
  TensorMap b = make_batch(c, 4, c.max_text_len, 0, 31);
  torch::NoGradGuard ng;
  EncoderInput all = vl_input(b);
  EncoderOutput full = m->encode(Mode::vl, all);
  EncoderInput one = vl_input(b, 3, 1);
  EncoderOutput single = m->encode(Mode::vl, one);
  // No capacity at inference and pads out of routing: a sample's output does not depend
  // on the rest of the batch.
  EXPECT_LE((full.pooled.narrow(0, 3, 1) - single.pooled).abs().max().item<double>(), 1e-5);
  EXPECT_TRUE(torch::equal(m->encode(Mode::vl, all).hidden, full.hidden));
}

TEST(MoE, DeviceCapacityEqualsHostFormula) {
  for (double factor : {1.0, 0.3, 0.5, 1.25})
    for (int64_t n : {0, 1, 7, 10, 100, 333, 4096})
      EXPECT_EQ(moe_capacity(torch::tensor(n), 32, factor, 4).item<int64_t>(),
                moe_capacity(n, 32, factor, 4))
          << n << " tokens, factor " << factor;
}

// Output, input gradient and parameter gradients of one forward + backward.
struct MoePass {
  MoeResult r;
  torch::Tensor dx;
  std::vector<torch::Tensor> grads;
};

MoePass moe_pass(MoE& moe, const torch::Tensor& x0, const torch::Tensor& modality,
                 const RoutingOptions& opt, const torch::Tensor& active = {}) {
  moe->zero_grad();
  torch::Tensor x = x0.clone().requires_grad_(true);
  MoePass p;
  p.r = moe->forward(x, modality, opt, active);
  (p.r.y.pow(2).sum() + p.r.aux).backward();
  p.dx = x.grad().clone();
  for (auto& t : moe->parameters()) p.grads.push_back(t.grad().defined() ? t.grad().clone()
                                                                         : torch::zeros_like(t));
  return p;
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return a.numel() ? (a - b).abs().max().item<double>() : 0.0;
}

void expect_passes_equal(const MoePass& a, const MoePass& b, const std::string& what) {
  EXPECT_LE(max_diff(a.r.y, b.r.y), 1e-5) << what;
  EXPECT_LE(max_diff(a.r.aux, b.r.aux), 1e-6) << what;
  EXPECT_LE(max_diff(a.dx, b.dx), 1e-5 * (1 + a.dx.abs().max().item<double>())) << what;
  ASSERT_EQ(a.grads.size(), b.grads.size());
  for (size_t i = 0; i < a.grads.size(); ++i)
    EXPECT_LE(max_diff(a.grads[i], b.grads[i]), 1e-5 * (1 + a.grads[i].abs().max().item<double>()))
        << what << ", parameter " << i;
}

TEST(MoE, CapacityLayoutKeepsNoStackedWeightsForBackward) {
  // 32 experts of 256 -> 1024: stacking their weights makes 2 * 32 * 256 * 1024 floats, 64 MiB
  // per call. Eight calls waiting for their backward pass must not hold eight such stacks
  // (eve-base holds a call per layer and pass: 48 of 0.6 GB each in an itc,itm,mlm step).
  torch::manual_seed(5);
  MoE moe(256, 1024, 32, /*type_route=*/true, "quick_gelu");
  const torch::Tensor x = torch::randn({64, 256}, torch::requires_grad());
  const torch::Tensor modality = torch::zeros({64}, torch::kLong);
  RoutingOptions opt;
  opt.capacity = moe_capacity(64, 32, 1.0, 4);
  opt.layout = ExpertLayout::capacity;
  opt.want_load = false;
  auto in_use = [] {
    const struct mallinfo2 m = mallinfo2();
    return static_cast<double>(m.uordblks + m.hblkhd);
  };
  const double before = in_use();
  std::vector<torch::Tensor> losses;
  for (int i = 0; i < 8; ++i) losses.push_back(moe->forward(x, modality, opt).y.sum());
  const double held = in_use() - before;
  // What backward needs: per call the slots [32, 4, 256] and pre-activations [32, 4, 1024],
  // under a MiB; the stacks would be 512 MiB.
  EXPECT_LT(held, 64.0 * 1024 * 1024) << held / 1048576 << " MiB held";
  torch::stack(losses).sum().backward();
  EXPECT_TRUE(moe->experts[31]->fc2->weight.grad().defined());
}

TEST(MoE, CapacityLayoutMatchesGroupedAndDenseWithGradients) {
  for (int64_t cap : {int64_t{-1}, moe_capacity(64, 4, 0.5, 4)}) {
    MoeCase c = make_case(64, 4, 26);
    RoutingOptions opt;
    opt.capacity = cap;
    opt.layout = ExpertLayout::grouped;
    MoePass grouped = moe_pass(c.moe, c.x, c.modality, opt);
    opt.layout = ExpertLayout::capacity;
    MoePass fixed = moe_pass(c.moe, c.x, c.modality, opt);
    opt.dispatch = Dispatch::dense;
    MoePass dense = moe_pass(c.moe, c.x, c.modality, opt);
    const std::string what = "capacity " + std::to_string(cap);
    expect_passes_equal(fixed, grouped, what + ": fixed layout vs grouped");
    expect_passes_equal(fixed, dense, what + ": fixed layout vs dense");
    EXPECT_TRUE(torch::equal(fixed.r.load.kept, grouped.r.load.kept)) << what;
    if (cap > 0) EXPECT_LT(fixed.r.load.kept.sum().item<int64_t>(), 128) << "nothing dropped";
  }
}

TEST(MoE, MaskedRowsRouteAsTheRealRowsAlone) {
  // Routing every row with padding masked out gives the real rows what routing only them
  // gives (the previous way: select the rows on the host, capacity from their count), for
  // every dispatch; padded rows get zero output and zero gradient.
  const int64_t S = 60, E = 4;
  MoeCase c = make_case(S, E, 27);
  torch::Tensor active = (torch::arange(S) % 5 != 2) & (torch::arange(S) < 52);
  torch::Tensor rows = active.nonzero().squeeze(1);
  const int64_t n = rows.size(0);
  for (Dispatch d : {Dispatch::sparse, Dispatch::dense}) {
    for (ExpertLayout l : {ExpertLayout::grouped, ExpertLayout::capacity}) {
      const std::string what = std::string(d == Dispatch::dense ? "dense" : "sparse") +
                               (l == ExpertLayout::grouped ? " grouped" : " capacity");
      RoutingOptions alone;
      alone.dispatch = d;
      alone.layout = l;
      alone.capacity = moe_capacity(n, E, 0.5, 4);
      MoePass want = moe_pass(c.moe, c.x.index_select(0, rows), c.modality.index_select(0, rows),
                              alone);
      RoutingOptions masked = alone;
      masked.capacity = moe_capacity(S, E, 0.5, 4);
      masked.capacity_limit = moe_capacity(active.sum(), E, 0.5, 4);
      MoePass got = moe_pass(c.moe, c.x, c.modality, masked, active);
      EXPECT_LT(want.r.load.kept.sum().item<int64_t>(), 2 * n) << what << ": nothing dropped";
      EXPECT_LE(max_diff(got.r.y.index_select(0, rows), want.r.y), 1e-5) << what;
      EXPECT_EQ(got.r.y.index({active.logical_not()}).abs().max().item<float>(), 0.f) << what;
      EXPECT_LE(max_diff(got.r.aux, want.r.aux), 1e-6) << what;
      EXPECT_LE(max_diff(got.dx.index_select(0, rows), want.dx), 1e-5) << what;
      EXPECT_EQ(got.dx.index({active.logical_not()}).abs().max().item<float>(), 0.f) << what;
      for (size_t i = 0; i < got.grads.size(); ++i)  // (relative to the gradients' scale)
        EXPECT_LE(max_diff(got.grads[i], want.grads[i]),
                  1e-5 * (1 + want.grads[i].abs().max().item<double>()))
            << what << ", parameter " << i;
      EXPECT_TRUE(torch::equal(got.r.load.top1, want.r.load.top1)) << what;
      EXPECT_TRUE(torch::equal(got.r.load.claims, want.r.load.claims)) << what;
      EXPECT_TRUE(torch::equal(got.r.load.kept, want.r.load.kept)) << what;
      EXPECT_EQ(got.r.load.tokens.item<int64_t>(), n) << what;
      EXPECT_EQ(got.r.load.capacity.item<int64_t>(), alone.capacity) << what;
    }
  }
}

TEST(MoE, LoadOnlyWhenAsked) {
  MoeCase c = make_case(16, 4, 28);
  RoutingOptions opt;
  opt.want_load = false;
  MoeResult r = c.moe->forward(c.x, c.modality, opt);
  EXPECT_FALSE(r.load.top1.defined());
  EXPECT_FALSE(r.load.kept.defined());
  opt.want_load = true;
  EXPECT_EQ(c.moe->forward(c.x, c.modality, opt).load.claims.sum().item<int64_t>(), 32);
}

// One training forward + backward of a small MoE model over a padded batch.
struct TrainPass {
  EncoderOutput out;
  std::map<std::string, int64_t> reads, ops;
  std::vector<torch::Tensor> grads;
};

TrainPass train_pass(EveModel& m, const EncoderInput& in, bool count) {
  TrainPass p;
  m->zero_grad();
  std::unique_ptr<OpCounter> ops;
  if (count) ops = std::make_unique<OpCounter>();
  p.out = m->encode(Mode::vl, in);
  (p.out.hidden.pow(2).mean() + p.out.aux).backward();
  if (ops) {
    p.reads = ops->host_reads();
    p.ops = ops->counts();
  }
  for (auto& t : m->parameters())
    p.grads.push_back(t.grad().defined() ? t.grad().clone() : torch::zeros_like(t));
  return p;
}

EveModel padded_training_model(const std::string& compat) {
  ModelConfig c = tiny_config();
  c.compat = compat;
  c.moe_capacity_factor = 0.5;  // drops claims
  torch::manual_seed(7);
  EveModel m(c);
  m->train();
  m->set_want_load(false);
  return m;
}

TEST(MoE, TrainingStepReadsNothingFromTheDevice) {
  for (const char* compat : {"eve", "official"}) {
    EveModel m = padded_training_model(compat);
    TensorMap b = make_batch(m->config(), 4, m->config().max_text_len, 0, 32);
    m->set_expert_layout(ExpertLayout::capacity);
    TrainPass p = train_pass(m, vl_input(b), true);
    std::string reads;
    for (const auto& [name, k] : p.reads) reads += " " + name + "=" + std::to_string(k);
    EXPECT_TRUE(p.reads.empty()) << compat << ": host reads:" << reads;
    // The counter saw the step: the batched expert products and the backward pass.
    EXPECT_GT(p.ops["aten::baddbmm"], 0) << compat;
    int64_t backward = 0;
    for (const auto& [name, k] : p.ops)
      if (name.find("Backward") != std::string::npos) backward += k;
    EXPECT_GT(backward, 0) << compat;
    // It sees host reads where there are some: the grouped layout reads its group sizes.
    m->set_expert_layout(ExpertLayout::grouped);
    EXPECT_GT(train_pass(m, vl_input(b), true).reads["aten::bincount"], 0) << compat;
  }
}

TEST(MoE, PaddedTrainingStepAgreesAcrossDispatches) {
  EveModel m = padded_training_model("eve");
  TensorMap b = make_batch(m->config(), 4, m->config().max_text_len, 0, 33);
  m->set_dispatch(Dispatch::dense);
  TrainPass dense = train_pass(m, vl_input(b), false);
  m->set_dispatch(Dispatch::sparse);
  for (ExpertLayout l : {ExpertLayout::capacity, ExpertLayout::grouped}) {
    m->set_expert_layout(l);
    TrainPass sparse = train_pass(m, vl_input(b), false);
    const char* what = l == ExpertLayout::capacity ? "capacity" : "grouped";
    EXPECT_LE(max_diff(sparse.out.hidden, dense.out.hidden), 1e-5) << what;
    EXPECT_LE(max_diff(sparse.out.aux, dense.out.aux), 1e-6) << what;
    for (size_t i = 0; i < dense.grads.size(); ++i)
      EXPECT_LE(max_diff(sparse.grads[i], dense.grads[i]),
                1e-5 * (1 + dense.grads[i].abs().max().item<double>()))
          << what << ", parameter " << i;
  }
}

}  // namespace
}  // namespace eve::model::test
