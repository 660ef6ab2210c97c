// Pre-training pieces: schedule shape, AdamW groups and update, masking statistics, the
// MIM loss seeing masked patches only, loader determinism and disjoint ranks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "eve/image/codec.h"
#include "eve/io/file.h"
#include "eve/io/image_store.h"
#include "eve/train/loader.h"
#include "eve/train/msm.h"
#include "eve/train/optim.h"

namespace {

using namespace eve::train;

TEST(TrainSchedule, WarmupThenCosineOrLinear) {
  Schedule s;
  s.lr = 1.0;
  s.min_lr = 0.1;
  s.warmup = 4;
  s.total = 14;
  EXPECT_DOUBLE_EQ(s.at(0), 0.25);
  EXPECT_DOUBLE_EQ(s.at(3), 1.0);
  EXPECT_DOUBLE_EQ(s.at(4), 1.0);
  EXPECT_NEAR(s.at(9), 0.55, 1e-12);  // half-way: min + (lr - min) / 2
  EXPECT_NEAR(s.at(14), 0.1, 1e-12);
  s.decay = "linear";
  EXPECT_NEAR(s.at(6), 1.0 - 0.9 * 0.2, 1e-12);
  s.decay = "constant";
  EXPECT_DOUBLE_EQ(s.at(13), 1.0);
}

TEST(TrainOptim, DecayGroupsAndAdamWMatchesTheFormula) {
  EXPECT_TRUE(exempt_from_decay("backbone.encoder.layers.0.attn.proj.bias", torch::zeros({4})));
  EXPECT_TRUE(exempt_from_decay("backbone.pos_embed_vision", torch::zeros({5, 4})));
  EXPECT_TRUE(exempt_from_decay("backbone.word_embedding.weight", torch::zeros({5, 4})));
  EXPECT_TRUE(exempt_from_decay("backbone.encoder.layers.0.gamma_1", torch::zeros({4})));
  EXPECT_FALSE(exempt_from_decay("backbone.encoder.layers.0.attn.qkv.weight", torch::zeros({12, 4})));
  EXPECT_FALSE(exempt_from_decay("backbone.patch_embed.weight", torch::zeros({4, 3, 2, 2})));

  torch::Tensor w = torch::full({2, 2}, 1.0).set_requires_grad(true);
  torch::Tensor b = torch::full({2}, 1.0).set_requires_grad(true);
  AdamWOptions o;
  AdamW opt({{"fc.weight", w}, {"fc.bias", b}}, o);
  EXPECT_EQ(opt.group_sizes(), std::make_pair(int64_t{4}, int64_t{2}));
  (w.sum() * 2 + b.sum() * 2).backward();
  opt.step(0.1);
  // First step: m/bc1 = g, sqrt(v/bc2) = |g|, so p -= lr * (wd * p + sign(g)) (eps aside).
  EXPECT_NEAR(w[0][0].item<double>(), 1.0 - 0.1 * 0.01 - 0.1, 1e-6);
  EXPECT_NEAR(b[0].item<double>(), 1.0 - 0.1, 1e-6);

  torch::Tensor g = torch::zeros({3});
  g.mutable_grad() = torch::tensor({3.0, 4.0, 0.0});
  EXPECT_NEAR(clip_grad_norm({g}, 1.0).item<double>(), 5.0, 1e-6);
  EXPECT_NEAR(g.grad().norm().item<double>(), 1.0, 1e-5);
}

eve::text::TokenizerInfo toy_tokenizer() {
  eve::text::TokenizerInfo t;
  t.vocab_size = 50;
  return t;  // pad 0, unk 1, cls 2, sep 3, mask 4
}

// Of the tokens chosen for MLM, 80% become [MASK], 10% a random non-special token and 10%
// stay. Over ~2,150 chosen tokens the standard deviation of a 10% share is 0.65 points, so
// 2.5 points (about 4 sd) separates the right split from one off by 5 points.
TEST(TrainMsm, MlmReplacementIs80_10_10) {
  const int64_t B = 1024, T = 16, N = 16;
  torch::Tensor ids = torch::zeros({B, T}, torch::kInt64), mask = torch::ones({B, T}, torch::kInt64);
  for (int64_t i = 0; i < B; ++i) {
    ids[i][0] = 2;
    for (int64_t t = 1; t < T - 1; ++t) ids[i][t] = 5 + (i * 7 + t) % 45;
    ids[i][T - 1] = 3;
  }
  MsmOptions o;
  MsmMasks m = make_msm_masks(ids, mask, N, o, toy_tokenizer(), 9, 0, 0);
  torch::Tensor chosen = m.mlm_labels.ne(-100);
  const double n = chosen.sum().item<double>();
  ASSERT_GT(n, 1500);
  torch::Tensor masked = m.mlm_ids.eq(4).logical_and(chosen);
  torch::Tensor kept = m.mlm_ids.eq(ids).logical_and(chosen);
  torch::Tensor other = m.mlm_ids.ne(4).logical_and(m.mlm_ids.ne(ids)).logical_and(chosen);
  // A random draw equal to the original token counts as kept: 1 in 45 of the 10%.
  EXPECT_NEAR(masked.sum().item<double>() / n, 0.8, 0.025);
  EXPECT_NEAR(kept.sum().item<double>() / n, 0.1 + 0.1 / 45, 0.025);
  EXPECT_NEAR(other.sum().item<double>() / n, 0.1 - 0.1 / 45, 0.025);
  // Random replacements are ordinary tokens, never special ones; unchosen tokens are unchanged.
  torch::Tensor drawn = m.mlm_ids.masked_select(other);
  EXPECT_TRUE(drawn.ge(5).logical_and(drawn.lt(50)).all().item<bool>());
  EXPECT_TRUE(m.mlm_ids.eq(ids).logical_or(chosen).all().item<bool>());
}

TEST(TrainMsm, MaskStatistics) {
  const int64_t B = 64, T = 20, N = 64;
  torch::Tensor ids = torch::zeros({B, T}, torch::kInt64), mask = torch::zeros({B, T}, torch::kInt64);
  for (int64_t i = 0; i < B; ++i) {
    ids[i][0] = 2;
    for (int64_t t = 1; t < 15; ++t) ids[i][t] = 10 + t;
    ids[i][15] = 3;
    mask.narrow(1, 0, 16)[i].fill_(1);
  }
  MsmOptions o;
  MsmMasks m = make_msm_masks(ids, mask, N, o, toy_tokenizer(), 5, 0, 0);
  EXPECT_EQ(m.ids_keep.size(1), 16);  // 75% of 64 masked
  EXPECT_EQ(m.mim_mask.sum().item<double>(), B * 48.0);
  EXPECT_TRUE(m.ids_keep.slice(1, 1).gt(m.ids_keep.slice(1, 0, -1)).all().item<bool>());
  torch::Tensor chosen = m.mlm_labels.ne(-100);
  // Never CLS, SEP or pads; at least one per text; about 15% of the 14 word tokens.
  EXPECT_FALSE(chosen.narrow(1, 0, 1).any().item<bool>());
  EXPECT_FALSE(chosen.narrow(1, 15, 5).any().item<bool>());
  EXPECT_TRUE(chosen.sum(1).ge(1).all().item<bool>());
  const double frac = chosen.sum().item<double>() / (B * 14.0);
  EXPECT_GT(frac, 0.1);
  EXPECT_LT(frac, 0.25);
  // 80/10/10 (MlmReplacementIs80_10_10): every chosen token is [MASK], a random token or itself.
  EXPECT_TRUE(m.mlm_ids.logical_not().logical_or(chosen).logical_or(m.mlm_ids.eq(ids)).all().item<bool>());
  // Same (seed, micro-batch, position) -> same masks, whatever the batch split.
  MsmMasks half = make_msm_masks(ids.narrow(0, 32, 32), mask.narrow(0, 32, 32), N, o, toy_tokenizer(), 5, 0, 32);
  EXPECT_TRUE(half.ids_keep.equal(m.ids_keep.narrow(0, 32, 32)));
  EXPECT_TRUE(half.mlm_ids.equal(m.mlm_ids.narrow(0, 32, 32)));
}

TEST(TrainMsm, MimLossOnlyCountsMaskedPatches) {
  torch::Tensor images = torch::rand({2, 3, 8, 8}) * 2 - 1;
  torch::Tensor target = mim_targets(images, 4, true);
  ASSERT_EQ(target.sizes(), (std::vector<int64_t>{2, 4, 48}));
  EXPECT_NEAR(target[0][1].mean().item<double>(), 0.0, 1e-5);
  EXPECT_NEAR(target[0][1].var(false).item<double>(), 1.0, 1e-3);
  torch::Tensor pred = target.clone();
  torch::Tensor mask = torch::tensor({{0.f, 1.f, 0.f, 1.f}, {1.f, 0.f, 0.f, 0.f}});
  pred[0][0].add_(5.0);  // wrong, but visible: no loss
  pred[1][2].add_(5.0);
  EXPECT_NEAR(mim_loss_sum(pred, target, mask).item<double>(), 0.0, 1e-9);
  pred[0][3].add_(2.0);  // masked: (2^2) mean over the patch
  EXPECT_NEAR(mim_loss_sum(pred, target, mask).item<double>(), 4.0, 1e-5);
  EXPECT_TRUE(mim_targets(images, 4, false).equal(eve::model::patchify(images, 4)));
}

struct ToyData {
  std::string dir;
  ToyData() {
    char templ[] = "/tmp/eve-train-test-XXXXXX";
    dir = mkdtemp(templ);
    eve::io::ImageStoreWriter w(dir);
    std::ofstream rec(dir + "/train.jsonl");
    for (int i = 0; i < 12; ++i) {
      eve::image::Image img(24, 20);
      for (size_t k = 0; k < img.pixels.size(); ++k) img.pixels[k] = static_cast<uint8_t>(k * (i + 3));
      w.add("img" + std::to_string(i), eve::image::encode_jpeg(img));
      rec << "{\"image\":\"img" << i << "\",\"ids\":[2," << 10 + i << ",3]}\n";
    }
    w.finish();
  }
  ~ToyData() { eve::io::try_remove_tree(dir); }
};

LoaderOptions loader_options(const std::string& dir, int rank, int world, int threads) {
  LoaderOptions o;
  o.dir = dir;
  o.global_batch = 4;
  o.rank = rank;
  o.world = world;
  o.seed = 9;
  o.max_text_len = 5;
  o.threads = threads;
  o.prefetch = 2;
  o.augment.res = 16;
  return o;
}

TEST(TrainLoader, DeterministicDisjointAndSeekable) {
  ToyData data;
  auto samples = read_pair_samples(data.dir, "train", 50);
  ASSERT_EQ(samples.size(), 12u);
  Loader one(samples, loader_options(data.dir, 0, 1, 1));
  Loader r0(samples, loader_options(data.dir, 0, 2, 3)), r1(samples, loader_options(data.dir, 1, 2, 2));
  EXPECT_EQ(one.batches_per_epoch(), 3);
  std::set<int64_t> seen;
  std::vector<Batch> first;
  for (int k = 0; k < 4; ++k) {  // crosses into epoch 1
    Batch a = one.next(), b0 = r0.next(), b1 = r1.next();
    EXPECT_EQ(a.epoch, k / 3);
    ASSERT_EQ(b0.images.size(0), 2);
    // The two ranks' halves are exactly the single process's batch, pixels included.
    EXPECT_TRUE(torch::cat({b0.images, b1.images}).equal(a.images));
    EXPECT_TRUE(torch::cat({b0.ids, b1.ids}).equal(a.ids));
    if (k < 3)
      for (int64_t i = 0; i < 4; ++i) seen.insert(a.ids[i][1].item<int64_t>());
    first.push_back(a);
  }
  EXPECT_EQ(seen.size(), 12u);  // one epoch visits every sample once
  EXPECT_EQ(first[0].mask[0][3].item<int64_t>(), 0);
  EXPECT_EQ(first[0].ids[0][3].item<int64_t>(), 0);
  one.seek(0, 2);
  EXPECT_TRUE(one.next().images.equal(first[2].images));
  EXPECT_NE(epoch_order(12, 9, 0), epoch_order(12, 9, 1));
}

TEST(TrainLoader, ErrorsNameTheRecord) {
  ToyData data;
  std::ofstream(data.dir + "/bad.jsonl") << "{\"image\":\"img0\",\"ids\":[2,3]}\n{\"image\":\"img1\",\"text\":\"x\"}\n";
  try {
    read_pair_samples(data.dir, "bad", 50);
    FAIL() << "no error";
  } catch (const eve::Error& e) {
    EXPECT_EQ(std::string(e.what()), data.dir + "/bad.jsonl:2: record has no token ids (\"ids\" or \"ids_list\") "
                                                 "(run the records through eve-tokenize encode first)");
  }
  std::ofstream(data.dir + "/big.jsonl") << "{\"image\":\"img0\",\"ids\":[2,77,3]}\n";
  EXPECT_THROW(read_pair_samples(data.dir, "big", 50), eve::Error);
}

}  // namespace
