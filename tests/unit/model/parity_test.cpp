// Parity of the libtorch model with the independent Python reference
// (tests/reference/eve_ref.py): same weights, same batch, same outputs to 1e-5.
#include "common/model_test_util.h"

namespace eve::model::test {
namespace {

constexpr double kTol = 1e-5;

// Saves the model as a bundle and the batch, runs the reference, returns its outputs.
TensorMap reference_outputs(EveModelImpl& m, const TensorMap& batch, const TempDir& dir,
                            bool train) {
  save_bundle(m, dir / "bundle");
  save_map(dir / "batch.safetensors", batch);
  std::string err;
  int rc = run_reference("outputs " + (dir / "bundle") + " " + (dir / "batch.safetensors") + " " +
                             (dir / "ref.safetensors") + (train ? " --train" : ""),
                         &err);
  EXPECT_EQ(rc, 0) << err;
  return rc == 0 ? load_map(dir / "ref.safetensors") : TensorMap{};
}

void check_both_dispatches(EveModel& m, const TensorMap& batch, bool train, const char* label) {
  TempDir dir;
  m->train(train);
  TensorMap want = reference_outputs(*m, batch, dir, train);
  ASSERT_FALSE(want.empty());
  torch::NoGradGuard ng;
  for (Dispatch d : {Dispatch::sparse, Dispatch::dense}) {
    m->set_dispatch(d);
    expect_maps_close(compute_outputs(*m, batch), want, kTol,
                      std::string(label) + (d == Dispatch::sparse ? " sparse" : " dense"));
  }
}

TEST(ModelParity, TinyEveryModeAndHead) {
  ModelConfig c = tiny_config();
  c.heads = {"itc", "itm", "vqa", "nlvr2_biattn", "mlm", "mim"};
  torch::manual_seed(1);
  EveModel m(c);
  TensorMap batch = make_batch(c, 3, c.max_text_len, 5, 11);
  check_both_dispatches(m, batch, /*train=*/false, "tiny");
}

TEST(ModelParity, TrainingModeWithCapacityOverflow) {
  ModelConfig c = tiny_config();
  c.heads = {"itm", "nlvr2", "mlm"};
  c.moe_capacity_factor = 0.3;  // forces dropped claims
  torch::manual_seed(2);
  EveModel m(c);
  TensorMap batch = make_batch(c, 4, c.max_text_len, 0, 12);
  check_both_dispatches(m, batch, /*train=*/true, "overflow");
  // The capacity really overflowed: some claims were dropped.
  torch::NoGradGuard ng;
  EncoderOutput o = m->encode(Mode::vl, vl_input(batch));
  ASSERT_FALSE(o.load.empty());
  EXPECT_LT(o.load[0].load.kept.sum().item<int64_t>(), o.load[0].load.claims.sum().item<int64_t>());
  EXPECT_LE(o.load[0].load.kept.max().item<int64_t>(), o.load[0].load.capacity.item<int64_t>());
}

// Training-mode randomness: drop-path (per sample, survivors scaled by 1/keep), text-embedding
// dropout, attention-probability dropout and Gumbel routing noise on the second expert. The
// reference and eve use the same torch generator, so seeded alike they draw the same numbers
// when they draw them in the same order, shapes and distributions; then the whole training
// pass agrees to float noise. A wrong rate, a per-token instead of per-sample drop-path, a
// missing 1/keep or noise on the wrong choice changes the outputs by far more than 1e-5.
TEST(ModelParity, TrainingRandomnessDrawsAsTheReference) {
  ModelConfig c = tiny_config();
  c.heads = {"itc", "itm", "mlm"};
  c.drop_path_rate = 0.6;
  c.text_dropout = 0.3;
  c.moe_noise = true;
#if TORCH_VERSION_MAJOR < 2
  // From libtorch 2 the fused attention draws its own dropout mask, not one the reference
  // can reproduce; there the other three sources are still compared.
  c.attention_dropout = 0.3;
#endif
  torch::manual_seed(6);
  EveModel m(c);
  TensorMap batch = make_batch(c, 4, c.max_text_len, 5, 16);
  TempDir dir;
  save_bundle(*m, dir / "bundle");
  save_map(dir / "batch.safetensors", batch);
  std::string err;
  ASSERT_EQ(run_reference("outputs " + (dir / "bundle") + " " + (dir / "batch.safetensors") + " " +
                              (dir / "ref.safetensors") + " --train --draw-seed 21",
                          &err),
            0)
      << err;
  TensorMap want = load_map(dir / "ref.safetensors");
  torch::NoGradGuard ng;
  m->train(true);
  torch::manual_seed(21);
  TensorMap got = compute_outputs(*m, batch);
  expect_maps_close(got, want, kTol, "training draws");
  // The draws mattered: other draws, or none, give other outputs.
  torch::manual_seed(22);
  TensorMap other = compute_outputs(*m, batch);
  m->train(false);
  TensorMap quiet = compute_outputs(*m, batch);
  EXPECT_GT((other.at("vl.hidden") - got.at("vl.hidden")).abs().max().item<double>(), 1e-2);
  EXPECT_GT((quiet.at("vl.hidden") - got.at("vl.hidden")).abs().max().item<double>(), 1e-2);
}

TEST(ModelParity, LargerConfigOfficialCompat) {
  ModelConfig c = tiny_config();
  c.vision_width = 128;
  c.num_attention_heads = 8;
  c.intermediate_size = 256;
  c.num_hidden_layers = 5;
  c.moeffn_layers = {3, 4};
  c.moe_param.num_experts = 8;
  c.image_res = 48;
  c.compat = "official";  // positional split, capacity at inference, pads routed
  c.heads = {"itc", "nlvr2"};
  torch::manual_seed(3);
  EveModel m(c);
  TensorMap batch = make_batch(c, 2, c.max_text_len, 0, 13);
  check_both_dispatches(m, batch, /*train=*/false, "larger");
}

TEST(ModelParity, OneOptimiserStepGivesTheSameWeights) {
  ModelConfig c = tiny_config();
  c.heads = {"itc", "itm", "vqa", "mlm", "mim"};
  c.moe_capacity_factor = 0.5;
  torch::manual_seed(4);
  EveModel m(c);
  TensorMap batch = make_batch(c, 3, c.max_text_len, 5, 14);
  m->train(true);
  TensorMap probe_src = compute_outputs(*m, batch);
  torch::manual_seed(5);
  for (const char* name : {"vl.hidden", "vision.pooled", "text.pooled", "itc.logits", "itm", "vqa",
                           "mlm", "mim", "mae.hidden"})
    batch[std::string("probe.") + name] = torch::randn(probe_src.at(name).sizes());
  TempDir dir;
  save_bundle(*m, dir / "bundle");
  save_map(dir / "batch.safetensors", batch);

  const double lr = 0.1;
  torch::optim::SGD opt(m->parameters(), torch::optim::SGDOptions(lr));
  TensorMap res = compute_outputs(*m, batch);
  torch::Tensor loss = torch::zeros({});
  for (const auto& [k, v] : batch)
    if (k.rfind("probe.", 0) == 0) loss = loss + (res.at(k.substr(6)) * v).sum();
  for (const auto& [k, v] : res)
    if (k.size() > 4 && k.compare(k.size() - 4, 4, ".aux") == 0) loss = loss + v;
  opt.zero_grad();
  loss.backward();
  opt.step();

  std::string err;
  ASSERT_EQ(run_reference("step " + (dir / "bundle") + " " + (dir / "batch.safetensors") + " " +
                              (dir / "ref.safetensors") + " --lr 0.1",
                          &err),
            0)
      << err;
  TensorMap want = load_map(dir / "ref.safetensors");
  EXPECT_NEAR(loss.item<double>(), want.at("loss").item<double>(), 1e-4 * (1 + std::abs(loss.item<double>())));
  want.erase("loss");
  TensorMap got;
  for (auto& p : m->named_parameters()) got[p.key()] = p.value();
  expect_maps_close(got, want, kTol, "sgd step");
  // The step moved the router and an expert (the MoE layers received gradients).
  torch::Tensor before = load_map(dir / "bundle/model.safetensors")
                             .at("backbone.encoder.layers.3.mlp_moe.moe.gate.wg.weight");
  EXPECT_GT((got.at("backbone.encoder.layers.3.mlp_moe.moe.gate.wg.weight") - before).abs().max().item<double>(), 0.0);
}

TEST(ModelParity, ConvertedOfficialCheckpointLoadsAndMatches) {
  TempDir dir;
  ModelConfig c = tiny_config();
  c.heads = {"itc", "itm", "vqa"};
  io::write_file_atomic(dir / "config.json", config_to_json(c));
  TensorMap batch = make_batch(c, 2, c.max_text_len, 0, 15);
  save_map(dir / "batch.safetensors", batch);
  std::string err;
  ASSERT_EQ(run_reference("init " + (dir / "config.json") + " " + (dir / "ckpt.pth") + " " +
                              (dir / "batch.safetensors") + " " + (dir / "ref.safetensors") +
                              " --seed 7",
                          &err),
            0)
      << err;
  std::string cmd = std::string(EVE_TEST_PYTHON) + " " + EVE_TEST_REFERENCE +
                    "/../../scripts/eve-convert-checkpoint " + (dir / "ckpt.pth") + " " +
                    (dir / "config.json") + " " + (dir / "bundle") + " 2>" + (dir / "conv.err");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << io::read_file(dir / "conv.err");
  Bundle b = load_bundle(dir / "bundle");  // strict: every name and shape must match
  EXPECT_TRUE(b.report.initialised.empty());
  EXPECT_EQ(b.config.heads, c.heads);
  EXPECT_EQ(b.config.image_res, c.image_res);
  b.model->eval();
  torch::NoGradGuard ng;
  expect_maps_close(compute_outputs(*b.model, batch), load_map(dir / "ref.safetensors"), kTol,
                    "converted");
}

}  // namespace
}  // namespace eve::model::test
