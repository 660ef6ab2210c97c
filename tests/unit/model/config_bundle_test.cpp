// Model config parsing, presets, parameter names and counts, bundles (save, load, errors,
// partial loads, resolution change) and the bundle summary.
#include "common/model_test_util.h"

#include <set>

#include "eve/core/error.h"
#include "eve/model/summary.h"

namespace eve::model::test {
namespace {

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(ModelConfig, OfficialKeysParseAndMissingKeysTakeDefaults) {
  ModelConfig c = parse_config(R"({"vision_width": 1024, "patch_size": 16, "hidden_act": "quick_gelu",
    "num_attention_heads": 16, "attention_dropout": 0.0, "intermediate_size": 4096,
    "num_hidden_layers": 24, "gradient_checkpointing": false, "drop_path_rate": 0.1,
    "vocab_size": 64000, "vision_vocab_size": 8192, "relative_position_embed": false,
    "ffn_type": "moe", "vlffn_layers": [21,22,23], "moeffn_layers": [21,22,23],
    "moe_param": {"num_experts": 32, "topk": 2, "type_route": true}, "moe_lossweight": 0.001})");
  EXPECT_EQ(c.vision_width, 1024);
  EXPECT_EQ(c.moeffn_layers, (std::vector<int>{21, 22, 23}));
  EXPECT_EQ(c.image_res, 224);
  EXPECT_EQ(c.max_text_len, 40);
  EXPECT_EQ(c.compat, "eve");
  EXPECT_EQ(c.moe_dispatch, "sparse");
  EXPECT_TRUE(c.heads.empty());
  // Round trip through config_to_json.
  ModelConfig d = parse_config(config_to_json(c));
  EXPECT_EQ(config_to_json(d), config_to_json(c));
}

TEST(ModelConfig, ErrorsNameTheKey) {
  EXPECT_EQ(error_of([] { parse_config(R"({"vision_widht": 768})", "m/config.json"); }),
            "m/config.json: unknown key \"vision_widht\" (see lib/eve/model/config.h for the accepted keys)");
  EXPECT_NE(error_of([] { parse_config(R"({"moe_param": {"experts": 4}})"); })
                .find("unknown key \"moe_param.experts\""),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_config(R"({"num_hidden_layers": "12"})"); })
                .find("key \"num_hidden_layers\" must be an integer, found string \"12\""),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_config(R"({"moeffn_layers": [12]})"); })
                .find("key \"moeffn_layers\": layer 12 is outside 0..11"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_config(R"({"image_res": 100})"); })
                .find("must be a multiple of patch_size 16"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_config(R"({"heads": ["vqa", "nlvr2"]})"); })
                .find("vqa and nlvr2 share"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_config(R"({"compat": "faithful"})"); })
                .find("key \"compat\": must be \"eve\" or \"official\""),
            std::string::npos);
}

TEST(ModelConfig, PresetsLoadAndOfficialSizesCount) {
  for (const char* p : {"eve-tiny", "eve-small", "eve-base", "eve-large"})
    EXPECT_NO_THROW(load_config(p)) << p;
  ModelConfig base = load_config("eve-base");
  base.image_res = 384;
  ParamCount pc = count_parameters(base);
  // EVE-Base as the released configuration builds it (docs/architecture.md, "Mixture of
  // experts"): ~475.5 M total, 302.2 M in experts, ~192 M active.
  EXPECT_NEAR(pc.total / 1e6, 475.5, 0.5);
  EXPECT_NEAR(pc.experts / 1e6, 302.2, 0.1);
  EXPECT_NEAR(pc.active_per_token / 1e6, 192.2, 0.5);
  ModelConfig large = load_config("eve-large");
  large.image_res = 384;
  ParamCount pl = count_parameters(large);
  EXPECT_NEAR(pl.total / 1e6, 1326, 2);
  EXPECT_NEAR(pl.experts / 1e6, 805.8, 0.2);
}

TEST(ModelNames, OfficialStateDictKeysAndShapes) {
  ModelConfig c = load_config("eve-base");
  c.image_res = 384;
  c.heads = {"vqa"};
  c.num_answers = 3128;
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& p : parameter_manifest(c)) EXPECT_TRUE(shapes.emplace(p.name, p.shape).second) << p.name;
  int64_t backbone = 0;
  for (auto& [k, v] : shapes) backbone += k.rfind("backbone.", 0) == 0;
  EXPECT_EQ(backbone, 508);  // 510 official entries minus the two position-id buffers
  using V = std::vector<int64_t>;
  EXPECT_EQ(shapes.at("backbone.patch_embed.weight"), (V{768, 3, 16, 16}));
  EXPECT_EQ(shapes.at("backbone.pos_embed_vision"), (V{577, 768}));
  EXPECT_EQ(shapes.at("backbone.pos_embed_text"), (V{196, 768}));
  EXPECT_EQ(shapes.at("backbone.word_embedding.weight"), (V{64000, 768}));
  EXPECT_EQ(shapes.at("backbone.encoder.layers.0.attn.qkv.weight"), (V{2304, 768}));
  EXPECT_EQ(shapes.count("backbone.encoder.layers.0.attn.qkv.bias"), 0u);
  EXPECT_EQ(shapes.at("backbone.encoder.layers.9.mlp_imag.fc1.weight"), (V{3072, 768}));
  EXPECT_EQ(shapes.at("backbone.encoder.layers.9.norm2_text.bias"), (V{768}));
  EXPECT_EQ(shapes.at("backbone.encoder.layers.10.mlp_moe.moe.gate.wg.weight"), (V{32, 768}));
  EXPECT_EQ(shapes.at("backbone.encoder.layers.11.mlp_moe.moe.vision_embed"), (V{768}));
  EXPECT_EQ(shapes.at("backbone.encoder.layers.11.mlp_moe.moe.experts.experts.31.fc2.weight"),
            (V{768, 3072}));
  EXPECT_EQ(shapes.at("backbone.encoder.layers.11.norm2_vl.weight"), (V{768}));
  EXPECT_EQ(shapes.at("output.0.weight"), (V{1536, 768}));
  EXPECT_EQ(shapes.at("output.1.weight"), (V{1536}));
  EXPECT_EQ(shapes.at("output.3.weight"), (V{3128, 1536}));
  EXPECT_EQ(shapes.count("backbone.encoder.layers.10.mlp_imag.fc1.weight"), 0u);
  ModelConfig large = load_config("eve-large");
  int64_t large_backbone = 0;
  for (const auto& p : parameter_manifest(large)) large_backbone += p.name.rfind("backbone.", 0) == 0;
  EXPECT_EQ(large_backbone, 881);  // 883 minus the two buffers
}

TEST(ModelNames, ManifestIsExactlyWhatTheModelBuilds) {
  ModelConfig c = tiny_config();
  c.heads = {"itc", "itm", "nlvr2", "nlvr2_biattn", "mlm", "mim"};
  c.vision_mask_token = true;
  for (bool type_route : {true, false}) {
    c.moe_param.type_route = type_route;
    EveModel m(c, /*initialise=*/false);
    std::map<std::string, std::vector<int64_t>> built, listed;
    for (auto& p : m->named_parameters()) built[p.key()] = p.value().sizes().vec();
    for (const auto& p : parameter_manifest(c)) listed[p.name] = p.shape;
    EXPECT_EQ(built, listed);
  }
}

TEST(ModelNames, HeadKeys) {
  ModelConfig c = tiny_config();
  c.heads = {"itc", "itm", "nlvr2_biattn", "mlm", "mim"};
  EveModel m(c);
  std::set<std::string> names;
  for (auto& p : m->named_parameters()) names.insert(p.key());
  for (const char* k : {"itc_temp", "itc_vision_proj_head.weight", "itc_text_proj_head.weight",
                        "itm_head.weight", "itm_head.bias", "attn1.in_proj_weight",
                        "attn1.in_proj_bias", "attn1.out_proj.weight", "attn2.out_proj.bias",
                        "fc.0.weight", "attn_pool.fc.0.weight", "nlvr2_output.weight",
                        "mlm_head.transform.dense.weight", "mlm_head.transform.LayerNorm.weight",
                        "mlm_head.decoder.bias", "mim_decoder.embed.weight",
                        "mim_decoder.mask_token", "mim_decoder.pos_embed",
                        "mim_decoder.layers.0.mlp.fc1.weight", "mim_decoder.pred.weight"})
    EXPECT_TRUE(names.count(k)) << k;
  EXPECT_FALSE(names.count("itc_vision_proj_head.bias"));
}

TEST(ModelInit, FollowsTheSpec) {
  ModelConfig c = tiny_config();
  c.vision_width = 256;
  c.heads = {"vqa"};
  torch::manual_seed(0);
  EveModel m(c);
  auto& b = *m->backbone;
  torch::Tensor qkv = b.layers[0]->attn->qkv->weight;
  EXPECT_LE(qkv.abs().max().item<float>(), 0.02f + 1e-7);     // truncated at one sigma
  EXPECT_NEAR(qkv.std().item<float>(), 0.02 * 0.5399, 0.0015);  // std of N(0,1) cut at +-1
  EXPECT_FLOAT_EQ(b.layers[1]->gamma_2.mean().item<float>(), 0.1f);
  EXPECT_EQ(b.layers[0]->attn->proj->bias.abs().max().item<float>(), 0.f);
  EXPECT_GT(b.word_embedding->weight.abs().max().item<float>(), 0.05f);  // plain normal
  EXPECT_NEAR(m->output[0]->as<torch::nn::Linear>()->weight.std().item<float>(), 0.02, 0.002);
}

TEST(ModelInit, QkInitStdScalesOnlyTheQueryAndKeyRows) {
  ModelConfig c = tiny_config();
  c.vision_width = 256;
  c.qk_init_std = 0.3;
  torch::manual_seed(0);
  EveModel m(c);
  for (auto& layer : m->backbone->layers) {
    torch::Tensor w = layer->attn->qkv->weight;
    torch::Tensor qk = w.narrow(0, 0, 512), v = w.narrow(0, 512, 256);
    EXPECT_LE(qk.abs().max().item<float>(), 0.3f + 1e-6);
    EXPECT_NEAR(qk.std().item<float>(), 0.3 * 0.5399, 0.01);
    EXPECT_LE(v.abs().max().item<float>(), 0.02f + 1e-7);  // values keep the common init
    EXPECT_NEAR(v.std().item<float>(), 0.02 * 0.5399, 0.0015);
  }
  EXPECT_LE(m->backbone->layers[0]->attn->proj->weight.abs().max().item<float>(), 0.02f + 1e-7);
  EXPECT_DOUBLE_EQ(parse_config(config_to_json(c)).qk_init_std, 0.3);
  EXPECT_DOUBLE_EQ(parse_config("{}").qk_init_std, 0.02);
  EXPECT_NE(error_of([] { parse_config(R"({"qk_init_std": 0})", "m/config.json"); })
                .find("m/config.json: key \"qk_init_std\": must be positive"),
            std::string::npos);
}

TEST(ModelForward, InputErrorsAreClear) {
  ModelConfig c = tiny_config();
  EveModel m(c);
  EncoderInput in;
  EXPECT_EQ(error_of([&] { m->encode(Mode::vision, in); }), "mode vision needs an image");
  in.image = torch::zeros({1, 3, 30, 30});
  EXPECT_EQ(error_of([&] { m->encode(Mode::vision, in); }),
            "image batch must be [B,3,R,R] with R a multiple of 8, found [1,3,30,30]");
  in.image = torch::zeros({1, 3, 32, 32});
  EXPECT_EQ(error_of([&] { m->vqa_logits(torch::zeros({1, 64})); }), "the model has no vqa head");
  in.text_ids = torch::zeros({1, 17}, torch::kLong);
  EXPECT_EQ(error_of([&] { m->encode(Mode::vl, in); }),
            "text ids must be [B,T] with 1 <= T <= 16, found [1,17]");
}

TEST(ModelForward, AnyResolutionAndTextLengthInVlMode) {
  ModelConfig c = tiny_config();
  torch::manual_seed(7);
  EveModel m(c);
  m->eval();
  torch::NoGradGuard ng;
  EncoderInput in;
  in.image = torch::randn({2, 3, 48, 48});  // 36 patches against a 16-patch table
  in.text_ids = torch::randint(5, 300, {2, 7}, torch::kLong);
  EncoderOutput o = m->encode(Mode::vl, in);
  EXPECT_EQ(o.hidden.sizes(), (std::vector<int64_t>{2, 37 + 7, 64}));
  EXPECT_EQ(o.num_vision, 37);
  EXPECT_TRUE(torch::equal(o.pooled, o.hidden.select(1, 37)));
  // The resized table keeps the CLS row and agrees with bicubic interpolation at the same size.
  torch::Tensor t = interpolate_positions(m->backbone->pos_embed_vision, 6);
  EXPECT_TRUE(torch::equal(t[0], m->backbone->pos_embed_vision[0]));
  EXPECT_TRUE(torch::equal(interpolate_positions(m->backbone->pos_embed_vision, 4),
                           m->backbone->pos_embed_vision));
}

TEST(Bundle, SaveLoadRoundTripAndSummary) {
  TempDir dir;
  ModelConfig c = tiny_config();
  c.heads = {"itc", "vqa"};
  torch::manual_seed(8);
  EveModel m(c);
  io::write_file_atomic(dir / "answers.json", "[\"yes\", \"no\"]");
  SaveOptions so;
  so.answers = dir / "answers.json";
  save_bundle(*m, dir / "b", so);
  Bundle b = load_bundle(dir / "b");
  EXPECT_EQ(b.answers, dir / "b/answers.json");
  EXPECT_TRUE(b.tokenizer.empty());
  EXPECT_TRUE(b.report.initialised.empty() && b.report.ignored.empty());
  auto p1 = m->named_parameters(), p2 = b.model->named_parameters();
  for (auto& p : p1) EXPECT_TRUE(torch::equal(p.value(), p2[p.key()])) << p.key();

  BundleSummary s = summarize_bundle(dir / "b");
  int64_t total = 0;
  for (auto& p : p1) total += p.value().numel();
  EXPECT_EQ(s.total_params, total);
  EXPECT_EQ(s.expert_params, 2 * 4 * (64 * 128 * 2 + 128 + 64));
  EXPECT_EQ(s.active_params, total - s.expert_params / 2);
  std::string text = format_summary(s);
  EXPECT_NE(text.find("layers       4 (width 64, 4 heads, FFN 128, quick_gelu)"), std::string::npos) << text;
  EXPECT_NE(text.find("moe          layers 2,3; 4 experts, top-2"), std::string::npos) << text;
  EXPECT_NE(text.find("image        32 px, patch 8 (16 patches)"), std::string::npos) << text;
  EXPECT_NE(text.find("answers      answers.json"), std::string::npos) << text;
}

TEST(Bundle, MismatchesAreListedByName) {
  TempDir dir;
  ModelConfig c = tiny_config();
  c.heads = {"itm"};
  EveModel m(c);
  save_bundle(*m, dir / "b");
  // A model with another width in one place, a head the file lacks and no itm head.
  ModelConfig other = c;
  other.text_pos_rows = 14;
  other.heads = {"vqa"};
  EveModel m2(other);
  std::string e = error_of([&] { load_weights(*m2, dir / "b/model.safetensors"); });
  EXPECT_NE(e.find("9 tensor(s) do not fit the model: shape of backbone.pos_embed_text expected [14,64] found [16,64]"),
            std::string::npos) << e;
  EXPECT_NE(e.find("missing output.3.weight [10,128]"), std::string::npos) << e;
  EXPECT_NE(e.find("unexpected itm_head.weight [2,64]"), std::string::npos) << e;
  EXPECT_EQ(e.rfind(dir / "b/model.safetensors", 0), 0u) << e;
}

TEST(Bundle, AllowPartialLoadsABackboneIntoNewHeadsAndResizesPositions) {
  TempDir dir;
  ModelConfig c = tiny_config();
  c.heads = {"itm", "mlm"};
  torch::manual_seed(9);
  EveModel m(c);
  save_bundle(*m, dir / "b");
  LoadOptions opt;
  opt.allow_partial = true;
  opt.replace_heads = true;
  opt.heads = {"vqa", "mlm"};
  opt.image_res = 48;
  Bundle b = load_bundle(dir / "b", opt);
  EXPECT_EQ(b.config.image_res, 48);
  ASSERT_EQ(b.report.resized.size(), 1u);
  EXPECT_EQ(b.report.resized[0], "backbone.pos_embed_vision [17,64] -> [37,64]");
  EXPECT_EQ(b.report.ignored, (std::vector<std::string>{"itm_head.bias [2]", "itm_head.weight [2,64]"}));
  EXPECT_EQ(b.report.initialised.size(), 6u);  // output.{0,1,3}.{weight,bias}
  EXPECT_TRUE(torch::equal(b.model->mlm_decoder->weight, m->mlm_decoder->weight));
  EXPECT_TRUE(torch::equal(b.model->backbone->pos_embed_vision,
                           interpolate_positions(m->backbone->pos_embed_vision, 6)));
  // Without allow_partial the same load fails.
  opt.allow_partial = false;
  EXPECT_NE(error_of([&] { load_bundle(dir / "b", opt); }).find("missing output.0.bias"), std::string::npos);
  EXPECT_NE(error_of([&] { load_bundle(dir / "nope"); }).find("not a model bundle: no config.json"),
            std::string::npos);
}

TEST(Bundle, AHeadOfAnotherTaskOrLabelListStartsFreshThoughItsShapesFit) {
  TempDir dir;
  ModelConfig c = tiny_config();
  c.heads = {"vqa"};
  c.num_answers = 2;  // a yes/no VQA head: output.3 is [2, 2D], as NLVR2's
  torch::manual_seed(10);
  EveModel m(c);
  save_bundle(*m, dir / "b");
  auto output = [](const Bundle& b, const char* name) { return b.model->named_parameters()[name]; };
  LoadOptions opt;
  opt.allow_partial = true;
  opt.replace_heads = true;
  opt.heads = {"nlvr2"};
  Bundle n = load_bundle(dir / "b", opt);
  // Every NLVR2 head tensor is fresh: output.0 differs in shape; output.1 and output.3 fit but
  // were trained for VQA's labels.
  EXPECT_EQ(n.report.initialised.size(), 6u);
  EXPECT_FALSE(torch::equal(output(n, "output.3.weight"), m->named_parameters()["output.3.weight"]));
  EXPECT_NE(std::find(n.report.initialised.begin(), n.report.initialised.end(),
                      "output.3.weight [2,128] (not loaded: trained for other labels)"),
            n.report.initialised.end());
  EXPECT_TRUE(torch::equal(n.model->backbone->pos_embed_vision, m->backbone->pos_embed_vision));
  // The same task keeps its head, unless the caller names what to leave fresh.
  opt.heads = {"vqa"};
  Bundle v = load_bundle(dir / "b", opt);
  EXPECT_TRUE(v.report.initialised.empty());
  EXPECT_TRUE(torch::equal(output(v, "output.3.weight"), m->named_parameters()["output.3.weight"]));
  opt.fresh_prefixes = {"output.3."};
  Bundle w = load_bundle(dir / "b", opt);
  EXPECT_EQ(w.report.initialised.size(), 2u);
  EXPECT_FALSE(torch::equal(output(w, "output.3.weight"), m->named_parameters()["output.3.weight"]));
  EXPECT_TRUE(torch::equal(output(w, "output.0.weight"), m->named_parameters()["output.0.weight"]));
}

}  // namespace
}  // namespace eve::model::test
