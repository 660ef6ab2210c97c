// Gradient checkpointing of the encoder layers (model/checkpointing.h): the same gradients as
// the plain run with dropout, drop-path and routing noise on, in both MoE dispatches, in float32
// and under bf16 autocast; only in training with gradients on; the config key and the setter.
#include "common/model_test_util.h"

#include "eve/model/checkpointing.h"
#include "eve/model/runtime.h"

namespace eve::model::test {
namespace {

// tiny_config with every source of randomness of a training pass on, and a capacity that drops
// claims (4 experts, at most 4 claims each for ~60 routed tokens).
ModelConfig random_config(const std::string& dispatch, double attention_dropout) {
  ModelConfig c = tiny_config();
  c.drop_path_rate = 0.3;
  c.text_dropout = 0.1;
  c.attention_dropout = attention_dropout;
  c.moe_noise = true;
  c.moe_dispatch = dispatch;
  c.moe_capacity_factor = 0.5;
  c.moe_min_capacity = 1;
  c.heads = {"itm"};
  return c;
}

// Two models with the same weights: without gradient checkpointing (first) and with it, by
// the config key (second).
std::pair<EveModel, EveModel> twin_models(const ModelConfig& c, uint64_t seed) {
  ModelConfig off = c, on = c;
  off.gradient_checkpointing = false;
  on.gradient_checkpointing = true;
  torch::manual_seed(seed);
  EveModel plain(off);
  torch::manual_seed(seed);
  EveModel ckpt(on);
  return {plain, ckpt};
}

struct Pass {
  double loss = 0;
  std::map<std::string, torch::Tensor> grads;
  std::vector<LayerLoad> load;
  torch::Tensor next_draw;  // the generator's next number after the pass
  std::string last_node;    // autograd node that produced the encoder's last layer output
};

// One training pass: seed, forward (under bf16 autocast when asked), a loss over the hidden
// states, the ITM head and the weighted MoE aux loss, backward outside the autocast scope.
Pass train_pass(EveModel& m, const TensorMap& batch, bool bf16, uint64_t seed) {
  m->train();
  m->zero_grad();
  torch::manual_seed(seed);
  Pass p;
  torch::Tensor loss;
  {
    model::Autocast autocast(bf16 ? model::Precision::bf16 : model::Precision::fp32, "cpu");
    EncoderOutput o = m->encode(Mode::vl, vl_input(batch));
    loss = o.hidden.to(torch::kFloat).pow(2).mean() +
           m->itm_logits(o.pooled).to(torch::kFloat).logsumexp(1).mean() +
           m->config().moe_lossweight * 100 * o.aux;
    p.load = o.load;
    p.last_node = o.pre_norm.grad_fn() ? o.pre_norm.grad_fn()->name() : "";
  }
  loss.backward();
  p.loss = loss.item<double>();
  for (const auto& kv : m->named_parameters())
    if (kv.value().grad().defined()) p.grads[kv.key()] = kv.value().grad().clone();
  p.next_draw = torch::rand({4});
  return p;
}

void expect_same_pass(const Pass& plain, const Pass& ckpt, double tol, const std::string& label) {
  EXPECT_EQ(plain.loss, ckpt.loss) << label << ": the forward pass changed";
  EXPECT_TRUE(torch::equal(plain.next_draw, ckpt.next_draw))
      << label << ": the recomputation left the random generator elsewhere";
  ASSERT_EQ(plain.load.size(), ckpt.load.size()) << label;
  for (size_t i = 0; i < plain.load.size(); ++i) {
    EXPECT_TRUE(torch::equal(plain.load[i].load.kept, ckpt.load[i].load.kept)) << label << " layer " << i;
    EXPECT_TRUE(plain.load[i].load.capacity.equal(ckpt.load[i].load.capacity)) << label;
  }
  ASSERT_EQ(plain.grads.size(), ckpt.grads.size()) << label << ": parameters with a gradient differ";
  for (const auto& [name, g] : plain.grads) {
    auto it = ckpt.grads.find(name);
    if (it == ckpt.grads.end()) {
      ADD_FAILURE() << label << ": no gradient for " << name;
      continue;
    }
    // Relative to the tensor's largest gradient: these gradients are small (1e-2 and less),
    // so an absolute tolerance would let a recomputation in another precision through.
    const double scale = g.abs().max().item<double>();
    const double diff = (it->second - g).abs().max().item<double>();
    EXPECT_LE(diff, tol * scale) << label << ": " << name << " (largest gradient " << scale << ")";
  }
}

struct Case {
  std::string dispatch;
  bool bf16;
  double attention_dropout;
};

class CheckpointingGradients : public ::testing::TestWithParam<Case> {};

TEST_P(CheckpointingGradients, EqualThePlainRunWithEverySourceOfRandomnessOn) {
  const Case k = GetParam();
  const ModelConfig c = random_config(k.dispatch, k.attention_dropout);
  auto [plain, ckpt] = twin_models(c, 11);
  const TensorMap batch = make_batch(c, 4, c.max_text_len, 0, 5);
  for (uint64_t seed : {1, 2}) {
    const Pass a = train_pass(plain, batch, k.bf16, seed);
    const Pass b = train_pass(ckpt, batch, k.bf16, seed);
    EXPECT_EQ(a.last_node.find("CheckpointFunction"), std::string::npos) << a.last_node;
    EXPECT_NE(b.last_node.find("CheckpointFunction"), std::string::npos)
        << "the checkpointed model's layers were not checkpointed: " << b.last_node;
    // Every number of the two runs comes from the same operations on the same bits; only the
    // order in which autograd adds up a parameter's gradient may differ.
    expect_same_pass(a, b, k.bf16 ? 1e-5 : 1e-6,
                     k.dispatch + (k.bf16 ? " bf16" : " fp32") + " seed " + std::to_string(seed));
    // The MoE routers learn from the aux loss: a recomputation without it would differ here.
    EXPECT_GT(a.grads.at("backbone.encoder.layers.3.mlp_moe.moe.gate.wg.weight").abs().sum().item<double>(), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Dispatches, CheckpointingGradients,
                         ::testing::Values(Case{"sparse", false, 0.0}, Case{"dense", false, 0.1},
                                           Case{"sparse", true, 0.1}, Case{"dense", true, 0.0}),
                         [](const ::testing::TestParamInfo<Case>& i) {
                           return i.param.dispatch + (i.param.bf16 ? "_bf16" : "_fp32") +
                                  (i.param.attention_dropout > 0 ? "_attention_dropout" : "");
                         });

TEST(Checkpointing, LayersLearnWhenTheirInputNeedsNoGradient) {
  // Frozen embeddings: the first layer's input requires no gradient, its parameters do.
  const ModelConfig c = random_config("sparse", 0.0);
  auto [plain, ckpt] = twin_models(c, 3);
  for (EveModel* m : {&plain, &ckpt})
    for (auto& kv : (*m)->named_parameters())
      if (kv.key().find("encoder.layers") == std::string::npos) kv.value().requires_grad_(false);
  const TensorMap batch = make_batch(c, 3, c.max_text_len, 0, 8);
  const Pass a = train_pass(plain, batch, false, 4);
  const Pass b = train_pass(ckpt, batch, false, 4);
  EXPECT_TRUE(a.grads.count("backbone.encoder.layers.0.attn.qkv.weight"));
  expect_same_pass(a, b, 1e-6, "frozen embeddings");
}

TEST(Checkpointing, OnlyInTrainingWithGradients) {
  const ModelConfig c = random_config("sparse", 0.0);
  auto [plain, m] = twin_models(c, 5);
  const TensorMap batch = make_batch(c, 3, c.max_text_len, 0, 9);
  // Evaluation: the plain computation, with its usual graph.
  m->eval();
  plain->eval();
  EncoderOutput e = m->encode(Mode::vl, vl_input(batch));
  EncoderOutput pe = plain->encode(Mode::vl, vl_input(batch));
  ASSERT_TRUE(e.pre_norm.grad_fn());
  EXPECT_EQ(e.pre_norm.grad_fn()->name().find("CheckpointFunction"), std::string::npos);
  EXPECT_TRUE(torch::equal(e.hidden, pe.hidden));
  // Training without gradients (e.g. a forward pass for statistics): nothing to keep.
  m->train();
  plain->train();
  torch::NoGradGuard ng;
  torch::manual_seed(2);
  EncoderOutput t = m->encode(Mode::vl, vl_input(batch));
  torch::manual_seed(2);
  EncoderOutput pt = plain->encode(Mode::vl, vl_input(batch));
  EXPECT_FALSE(t.pre_norm.grad_fn());
  EXPECT_TRUE(torch::equal(t.hidden, pt.hidden));
  EXPECT_TRUE(torch::equal(t.aux, pt.aux));
}

TEST(Checkpointing, ConfigKeyAndTheRunSetting) {
  ModelConfig c = tiny_config();
  EXPECT_FALSE(EveModel(c)->gradient_checkpointing());
  c.gradient_checkpointing = true;
  EXPECT_TRUE(EveModel(c)->gradient_checkpointing());
  // The setter is a setting of the run: the config (what a bundle records) keeps its value.
  c.gradient_checkpointing = false;
  EveModel m(c);
  m->set_gradient_checkpointing(true);
  EXPECT_TRUE(m->gradient_checkpointing());
  EXPECT_FALSE(m->config().gradient_checkpointing);
  TempDir dir;
  save_bundle(*m, dir.path);
  EXPECT_FALSE(load_bundle(dir.path).config.gradient_checkpointing);
}

TEST(Checkpointing, BackwardRefusesParametersChangedSinceForward) {
  torch::manual_seed(1);
  torch::nn::Linear lin(3, 3);
  std::shared_ptr<torch::nn::LinearImpl> impl = lin.ptr();
  torch::Tensor x = torch::randn({2, 3}, torch::requires_grad());
  std::vector<torch::Tensor> out = checkpoint(
      [impl](const std::vector<torch::Tensor>& in) { return std::vector<torch::Tensor>{impl->forward(in[0])}; },
      {x}, lin->parameters());
  {
    torch::NoGradGuard ng;
    lin->weight.add_(1.0);  // an optimiser step before backward: the recomputation would differ
  }
  EXPECT_THROW(out[0].sum().backward(), c10::Error);
}

}  // namespace
}  // namespace eve::model::test
