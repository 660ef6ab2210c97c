// eve-pretrain beyond masked signal modeling: --objective/--stage parsing and its errors,
// --freeze glob matching (also on the model's real parameter names), the MIM and MLM loss
// pieces that msm, the image stage and the text stage share, text-only masks, and the
// text-stage loader (determinism, disjoint ranks, records with and without images).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "eve/core/error.h"
#include "eve/train/msm.h"
#include "eve/train/pretrain.h"
#include "eve/train/text_loader.h"
#include "common/model_test_util.h"

namespace {

using namespace eve::train;
namespace F = torch::nn::functional;

std::string usage_error(const std::string& objective, const std::string& stage) {
  try {
    parse_objective(objective, stage);
  } catch (const eve::UsageError& e) {
    return e.what();
  }
  return "no error";
}

TEST(TrainVlmoObjective, SubsetsInAnyOrderAndStageDefaults) {
  Objective a = parse_objective("mlm,itc,itm", "vl");
  EXPECT_EQ(a.name(), "itc,itm,mlm");
  EXPECT_TRUE(a.itc && a.itm && a.mlm && !a.mim && !a.msm() && a.contrastive());
  EXPECT_EQ(a.heads(), (std::vector<std::string>{"itc", "itm", "mlm"}));
  // ITM alone still needs the ITC heads to mine its hard negatives.
  EXPECT_EQ(parse_objective("itm", "vl").heads(), (std::vector<std::string>{"itc", "itm"}));
  EXPECT_EQ(parse_objective("mlm,itc", "vl").name(), "itc,mlm");
  Objective m = parse_objective("mlm", "vl");
  EXPECT_FALSE(m.contrastive());
  EXPECT_EQ(m.heads(), (std::vector<std::string>{"mlm"}));

  Objective msm = parse_objective("", "vl");
  EXPECT_TRUE(msm.msm());
  EXPECT_EQ(msm.name(), "msm");
  EXPECT_EQ(msm.heads(), (std::vector<std::string>{"mlm", "mim"}));
  EXPECT_EQ(parse_objective("msm", "vl").name(), "msm");
  Objective image = parse_objective("", "image");
  EXPECT_EQ(image.name(), "mim");
  EXPECT_FALSE(image.msm());
  EXPECT_EQ(image.heads(), (std::vector<std::string>{"mim"}));
  EXPECT_EQ(parse_objective("mim", "image").name(), "mim");
  Objective text = parse_objective("", "text");
  EXPECT_EQ(text.name(), "mlm");
  EXPECT_EQ(text.heads(), (std::vector<std::string>{"mlm"}));
}

TEST(TrainVlmoObjective, ImpossibleCombinationsAreUsageErrors) {
  const std::string expected = " (expected msm, or any of itc, itm, mlm separated by commas; mim with --stage image)";
  EXPECT_EQ(usage_error("msm,itc", "vl"),
            "--objective msm,itc: msm (masked signal modeling) cannot be combined with other objectives");
  EXPECT_EQ(usage_error("itc,foo", "vl"), "--objective itc,foo: unknown objective \"foo\"" + expected);
  EXPECT_EQ(usage_error("itc,,mlm", "vl"), "--objective itc,,mlm: unknown objective \"\"" + expected);
  EXPECT_EQ(usage_error("itc,", "vl"), "--objective itc,: unknown objective \"\"" + expected);
  EXPECT_EQ(usage_error("ITC", "vl"), "--objective ITC: unknown objective \"ITC\"" + expected);
  EXPECT_EQ(usage_error("itc,mlm,itc", "vl"), "--objective itc,mlm,itc: itc is given twice");
  EXPECT_EQ(usage_error("mim", "vl"),
            "--objective mim: mim (masked image modeling alone) needs --stage image; --stage vl trains msm or "
            "any of itc, itm, mlm");
  EXPECT_EQ(usage_error("msm", "image"),
            "--stage image trains masked image modeling on images alone: --objective must be mim (or left "
            "out), not msm");
  EXPECT_EQ(usage_error("mim,mlm", "image"),
            "--stage image trains masked image modeling on images alone: --objective must be mim (or left "
            "out), not mim,mlm");
  EXPECT_EQ(usage_error("itc", "text"),
            "--stage text trains masked language modeling on text alone: --objective must be mlm (or left "
            "out), not itc");
  EXPECT_EQ(usage_error("", "audio"), "--stage audio: expected vl, image or text");
}

TEST(TrainVlmoFreeze, GlobMatching) {
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_TRUE(glob_match("*", "backbone.norm.weight"));
  EXPECT_TRUE(glob_match("itc_temp", "itc_temp"));
  EXPECT_FALSE(glob_match("itc_temp", "itc_temp2"));
  EXPECT_FALSE(glob_match("itc_temp", "itc_tem"));
  EXPECT_TRUE(glob_match("backbone.*", "backbone.encoder.layers.3.attn.qkv.weight"));  // across dots
  EXPECT_TRUE(glob_match("*.bias", "backbone.encoder.layers.3.attn.proj.bias"));
  EXPECT_FALSE(glob_match("*.bias", "backbone.encoder.layers.3.attn.q_bias"));
  EXPECT_TRUE(glob_match("backbone.encoder.layers.?.attn.*", "backbone.encoder.layers.3.attn.q_bias"));
  EXPECT_FALSE(glob_match("backbone.encoder.layers.?.attn.*", "backbone.encoder.layers.10.attn.q_bias"));
  EXPECT_TRUE(glob_match("backbone.encoder.layers.??.attn.*", "backbone.encoder.layers.10.attn.q_bias"));
  EXPECT_TRUE(glob_match("*layers*mlp*", "backbone.encoder.layers.1.mlp_text.fc1.weight"));
  EXPECT_FALSE(glob_match("*layers*mlp*x", "backbone.encoder.layers.1.mlp_text.fc1.weight"));
  EXPECT_TRUE(glob_match("a*b*c", "aXbYbZc"));  // backtracking past the first b
  EXPECT_FALSE(glob_match("a*b*c", "aXbYbZ"));
  EXPECT_TRUE(glob_match("a**?", "ab"));
  EXPECT_FALSE(glob_match("a**?", "a"));
  EXPECT_FALSE(glob_match("", "a"));
}

TEST(TrainVlmoFreeze, PatternsOnTheModelsParameterNames) {
  eve::model::ModelConfig c = eve::model::test::tiny_config();
  c.heads = {"itc", "itm", "mlm"};
  eve::model::EveModel m(c);
  auto count = [&](const std::string& pattern) {
    int n = 0;
    for (const auto& kv : m->named_parameters()) n += glob_match(pattern, kv.key());
    return n;
  };
  // Per layer: qkv.weight, q_bias, v_bias, proj.weight, proj.bias.
  EXPECT_EQ(count("backbone.encoder.layers.*.attn.*"), 5 * c.num_hidden_layers);
  EXPECT_EQ(count("backbone.encoder.layers.?.attn.qkv.weight"), c.num_hidden_layers);
  EXPECT_EQ(count("itc_*"), 3);  // the two projections and the temperature
  EXPECT_EQ(count("*"), static_cast<int>(m->named_parameters().size()));
  EXPECT_EQ(count("backbone.encoder.layer.*"), 0);
}

eve::text::TokenizerInfo tokenizer_for(const eve::model::ModelConfig& c) {
  eve::text::TokenizerInfo t;
  t.vocab_size = c.vocab_size;
  return t;  // pad 0, unk 1, cls 2, sep 3, mask 4
}

TEST(TrainVlmoLoss, MsmIsTheSumOfItsMimAndMlmPieces) {
  eve::model::ModelConfig c = eve::model::test::tiny_config();
  c.heads = {"mlm", "mim"};
  eve::model::EveModel m(c);
  m->eval();
  auto batch = eve::model::test::make_batch(c, 3, 10, 0, 4);
  MsmOptions o;
  o.mim_weight = 0.7;
  o.mlm_weight = 1.3;
  MsmMasks masks = make_msm_masks(batch["text_ids"], batch["text_mask"], c.num_patches(), o, tokenizer_for(c), 1, 0, 0);
  MsmLoss l = msm_loss(*m, batch["image"], batch["text_ids"], batch["text_mask"], masks, o);

  eve::model::EncoderInput a = eve::model::test::vl_input(batch);
  a.ids_keep = masks.ids_keep;
  eve::model::EncoderOutput ea = m->encode(eve::model::Mode::vl, a);
  torch::Tensor mim = mim_loss(*m, ea, batch["image"], masks, o.norm_target);
  // By hand: per-patch MSE over the masked patches, averaged over them.
  torch::Tensor pred = m->mim_predict(ea, masks.ids_keep), target = mim_targets(batch["image"], c.patch_size, true);
  const double by_hand =
      ((pred - target).pow(2).mean(-1) * masks.mim_mask).sum().item<double>() / masks.mim_mask.sum().item<double>();
  EXPECT_NEAR(mim.item<double>(), by_hand, 1e-6);
  EXPECT_NEAR(l.mim.item<double>(), mim.item<double>(), 1e-6);
  EXPECT_NEAR(mim_loss(*m, ea, batch["image"], masks, o.norm_target, 2.0).item<double>(),
              by_hand * masks.mim_mask.sum().item<double>() / 2.0, 1e-4);

  eve::model::EncoderInput b = eve::model::test::vl_input(batch);
  b.text_ids = masks.mlm_ids;
  eve::model::EncoderOutput eb = m->encode(eve::model::Mode::vl, b);
  torch::Tensor mlm = mlm_loss(*m, eb, masks.mlm_labels);
  torch::Tensor text = eb.hidden.narrow(1, eb.num_vision, 10);
  torch::Tensor chosen = masks.mlm_labels.ne(-100);
  const double ce = F::cross_entropy(m->mlm_logits(text.index({chosen})), masks.mlm_labels.index({chosen})).item<double>();
  EXPECT_NEAR(mlm.item<double>(), ce, 1e-5);
  EXPECT_NEAR(l.mlm.item<double>(), ce, 1e-5);
  const double aux = 0.5 * (ea.aux + eb.aux).item<double>();
  EXPECT_NEAR(l.total.item<double>(), 0.7 * by_hand + 1.3 * ce + c.moe_lossweight * aux, 1e-5);
}

// Whether back-propagation reached the tensor with a non-zero gradient.
bool got_gradient(const torch::Tensor& t) {
  return t.grad().defined() && t.grad().abs().sum().item<double>() > 0;
}

TEST(TrainVlmoLoss, ImageStageMimTrainsNoTextAndTextStageMlmNoImage) {
  eve::model::ModelConfig c = eve::model::test::tiny_config();
  c.heads = {"mlm", "mim"};
  eve::model::EveModel m(c);
  auto batch = eve::model::test::make_batch(c, 2, 8, 0, 5);
  MsmOptions o;
  MsmMasks masks = make_msm_masks(batch["text_ids"], batch["text_mask"], c.num_patches(), o, tokenizer_for(c), 2, 0, 0);
  eve::model::EncoderInput in;
  in.image = batch["image"];
  in.ids_keep = masks.ids_keep;
  eve::model::EncoderOutput e = m->encode(eve::model::Mode::vision, in);
  EXPECT_EQ(e.num_vision, 1 + masks.ids_keep.size(1));
  torch::Tensor mim = mim_loss(*m, e, batch["image"], masks, true);
  ASSERT_TRUE(std::isfinite(mim.item<double>()));
  mim.backward();
  EXPECT_TRUE(got_gradient(m->backbone->patch_embed->weight));
  EXPECT_TRUE(got_gradient(m->mim_decoder->pred->weight));
  EXPECT_FALSE(got_gradient(m->backbone->word_embedding->weight));
  EXPECT_FALSE(got_gradient(m->mlm_decoder->weight));
  m->zero_grad();

  MsmMasks t = make_msm_masks(batch["text_ids"], batch["text_mask"], 0, o, tokenizer_for(c), 2, 0, 0);
  eve::model::EncoderInput tin;
  tin.text_ids = t.mlm_ids;
  tin.text_mask = batch["text_mask"];
  eve::model::EncoderOutput te = m->encode(eve::model::Mode::text, tin);
  EXPECT_EQ(te.num_vision, 0);
  torch::Tensor mlm = mlm_loss(*m, te, t.mlm_labels);
  ASSERT_TRUE(std::isfinite(mlm.item<double>()));
  EXPECT_GT(mlm.item<double>(), 0);
  mlm.backward();
  EXPECT_TRUE(got_gradient(m->backbone->word_embedding->weight));
  EXPECT_TRUE(got_gradient(m->mlm_decoder->weight));
  EXPECT_FALSE(got_gradient(m->backbone->patch_embed->weight));
  EXPECT_FALSE(got_gradient(m->mim_decoder->pred->weight));

  // No chosen position: the loss is exactly 0 and trains nothing.
  torch::Tensor none = torch::full_like(t.mlm_labels, -100);
  torch::Tensor zero = mlm_loss(*m, te, none);
  EXPECT_EQ(zero.item<double>(), 0.0);
  EXPECT_FALSE(zero.requires_grad());
}

TEST(TrainVlmoLoss, TextOnlyMasks) {
  const int64_t B = 16, T = 12;
  torch::Tensor ids = torch::zeros({B, T}, torch::kInt64), mask = torch::zeros({B, T}, torch::kInt64);
  for (int64_t i = 0; i < B; ++i) {
    ids[i][0] = 2;
    for (int64_t t = 1; t < 9; ++t) ids[i][t] = 20 + t;
    ids[i][9] = 3;
    mask[i].narrow(0, 0, 10).fill_(1);
  }
  MsmOptions o;
  eve::text::TokenizerInfo tok;
  tok.vocab_size = 60;
  MsmMasks m = make_msm_masks(ids, mask, 0, o, tok, 3, 7, 100);
  EXPECT_FALSE(m.ids_keep.defined());
  EXPECT_FALSE(m.mim_mask.defined());
  torch::Tensor chosen = m.mlm_labels.ne(-100);
  EXPECT_TRUE(chosen.sum(1).ge(1).all().item<bool>());
  EXPECT_FALSE(chosen.narrow(1, 0, 1).any().item<bool>());   // CLS
  EXPECT_FALSE(chosen.narrow(1, 9, 3).any().item<bool>());   // SEP, pads
  EXPECT_TRUE(m.mlm_labels.index({chosen}).equal(ids.index({chosen})));
  EXPECT_TRUE(m.mlm_ids.index({chosen.logical_not()}).equal(ids.index({chosen.logical_not()})));
  // A pure function of (seed, micro-batch, position).
  MsmMasks again = make_msm_masks(ids.narrow(0, 8, 8), mask.narrow(0, 8, 8), 0, o, tok, 3, 7, 108);
  EXPECT_TRUE(again.mlm_ids.equal(m.mlm_ids.narrow(0, 8, 8)));
  EXPECT_FALSE(make_msm_masks(ids, mask, 0, o, tok, 4, 7, 100).mlm_labels.equal(m.mlm_labels));
}

struct TextData {
  eve::model::test::TempDir dir;
  TextData() {
    std::ofstream rec(dir / "train.jsonl");
    for (int i = 0; i < 9; ++i) {
      if (i % 3 == 0) rec << "{\"image\":\"img" << i << "\",\"ids\":[2," << 10 + i << ",3]}\n";
      else rec << "{\"ids\":[2," << 10 + i << ",11,12,13,3]}\n";  // text only
    }
    rec << "{\"ids_list\":[[2,40,3],[2,41,3],[2,42,3]]}\n";
  }
};

LoaderOptions text_options(int rank, int world) {
  LoaderOptions o;
  o.global_batch = 4;
  o.rank = rank;
  o.world = world;
  o.seed = 11;
  o.max_text_len = 4;
  return o;
}

TEST(TrainVlmoTextLoader, DeterministicDisjointAndSeekable) {
  TextData data;
  auto samples = read_text_samples(data.dir.path, "train", 50);
  ASSERT_EQ(samples.size(), 12u);
  EXPECT_EQ(samples[11].ids, (std::vector<int64_t>{2, 42, 3}));
  EXPECT_EQ(samples[1].where, data.dir / "train.jsonl:2");
  TextLoader one(samples, text_options(0, 1)), r0(samples, text_options(0, 2)), r1(samples, text_options(1, 2));
  EXPECT_EQ(one.batches_per_epoch(), 3);
  std::set<int64_t> seen;
  std::vector<Batch> first;
  for (int k = 0; k < 4; ++k) {
    Batch a = one.next(), b0 = r0.next(), b1 = r1.next();
    EXPECT_FALSE(a.images.defined());
    EXPECT_EQ(a.epoch, k / 3);
    EXPECT_EQ(a.first, (k % 3) * 4);
    EXPECT_EQ(b1.first, (k % 3) * 4 + 2);
    ASSERT_EQ(a.ids.sizes(), (std::vector<int64_t>{4, 4}));
    EXPECT_TRUE(torch::cat({b0.ids, b1.ids}).equal(a.ids));
    EXPECT_TRUE(torch::cat({b0.samples, b1.samples}).equal(a.samples));
    if (k < 3)
      for (int64_t i = 0; i < 4; ++i) seen.insert(a.samples[i].item<int64_t>());
    // Ids as written, cut at max_text_len, pads after.
    for (int64_t i = 0; i < 4; ++i) {
      const auto& s = samples[static_cast<size_t>(a.samples[i].item<int64_t>())].ids;
      const int64_t n = std::min<int64_t>(4, static_cast<int64_t>(s.size()));
      EXPECT_EQ(a.mask[i].sum().item<int64_t>(), n);
      for (int64_t t = 0; t < 4; ++t)
        EXPECT_EQ(a.ids[i][t].item<int64_t>(), t < n ? s[static_cast<size_t>(t)] : 0);
    }
    first.push_back(a);
  }
  EXPECT_EQ(seen.size(), 12u);
  std::vector<int64_t> order = epoch_order(12, 11, 0);
  EXPECT_EQ(first[0].samples[0].item<int64_t>(), order[0]);
  one.seek(0, 2);
  EXPECT_TRUE(one.next().samples.equal(first[2].samples));
  one.seek(1, 0);
  EXPECT_TRUE(one.next().samples.equal(first[3].samples));
}

TEST(TrainVlmoTextLoader, ErrorsNameTheRecord) {
  TextData data;
  std::ofstream(data.dir / "bad.jsonl") << "{\"ids\":[2,3]}\n{\"image\":\"img1\",\"text\":\"x\"}\n";
  try {
    read_text_samples(data.dir.path, "bad", 50);
    FAIL() << "no error";
  } catch (const eve::Error& e) {
    EXPECT_EQ(std::string(e.what()), data.dir / "bad.jsonl:2: record has no token ids (\"ids\" or \"ids_list\") "
                                                 "(run the records through eve-tokenize encode first)");
  }
  std::ofstream(data.dir / "big.jsonl") << "{\"ids\":[2,77,3]}\n";
  EXPECT_THROW(read_text_samples(data.dir.path, "big", 50), eve::Error);
  try {
    TextLoader(read_text_samples(data.dir.path, "big", 100), text_options(0, 1));
    FAIL() << "no error";
  } catch (const eve::UsageError& e) {
    EXPECT_EQ(std::string(e.what()), "the dataset has 1 texts, fewer than one batch of 4");
  }
}

TEST(TrainVlmoImageSamples, ImagesWithoutTokenIds) {
  TextData data;
  std::ofstream(data.dir / "img.jsonl") << "{\"image\":\"a\",\"text\":\"x\"}\n{\"image\":\"b\",\"ids\":[2,3]}\n";
  auto s = read_image_samples(data.dir.path, "img");
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].images, std::vector<std::string>{"a"});
  EXPECT_EQ(s[1].images, std::vector<std::string>{"b"});
  EXPECT_TRUE(s[1].ids.empty());
  try {
    read_image_samples(data.dir.path, "train");  // line 2 is text only
    FAIL() << "no error";
  } catch (const eve::Error& e) {
    EXPECT_EQ(std::string(e.what()), data.dir / "train.jsonl:2: record has no string field \"image\" "
                                                 "(the image stage reads the caption pairs written by eve-prep pairs)");
  }
}

}  // namespace
