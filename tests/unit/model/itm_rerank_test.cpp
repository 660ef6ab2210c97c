// The shared ITM re-ranker (model/itm_rerank.h): its two batchings agree on a compat eve
// model, candidates get their pair's logit and everything else -100, a compat official
// model's candidates are scored in the passes the released evaluation makes, and candidate
// lists with repeats.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "eve/model/itm_rerank.h"
#include "common/model_test_util.h"

namespace eve::model {
namespace {

// Random images and token lists held in memory; records the image rows each read asks for.
class MemoryRows : public ItmRows {
 public:
  MemoryRows(const ModelConfig& c, int64_t ni, int64_t nt) {
    images = torch::randn({ni, 3, c.image_res, c.image_res});
    for (int64_t t = 0; t < nt; ++t) {
      std::vector<int64_t> ids{c.cls_token_id};
      for (int64_t k = 0; k < 2 + t % 4; ++k) ids.push_back(5 + (t * 7 + k * 3) % (c.vocab_size - 5));
      texts.push_back(ids);
    }
  }
  torch::Tensor pixels(const std::vector<int64_t>& rows) override {
    reads.push_back(rows);
    return images.index_select(0, torch::tensor(rows));
  }
  const std::vector<int64_t>& tokens(int64_t row) override { return texts.at(static_cast<size_t>(row)); }

  torch::Tensor images;
  std::vector<std::vector<int64_t>> texts;
  std::vector<std::vector<int64_t>> reads;
};

// The config, after seeding torch's generator so weights and inputs are the same every run.
ModelConfig seeded(const ModelConfig& c) {
  torch::manual_seed(11);
  return c;
}

struct Fixture {
  explicit Fixture(const ModelConfig& c, int64_t ni = 5, int64_t nt = 7)
      : model(seeded(c)), rows(c, ni, nt) {
    test::widen_weights(*model);
    enc = std::make_unique<RetrievalEncoder>(model, torch::kCPU, "test", true);
    // Distinct ITC scores, so each query's top k_test is one set.
    i2t = torch::randperm(ni * nt, torch::kFloat).reshape({ni, nt}).contiguous();
    t2i = torch::randperm(ni * nt, torch::kFloat).reshape({nt, ni}).contiguous();
  }
  // The match logit of one (image, text) pair, scored alone.
  float alone(int64_t i, int64_t t) {
    return enc->match(rows.images.narrow(0, i, 1), {&rows.texts[static_cast<size_t>(t)]}).item<float>();
  }
  EveModel model;
  MemoryRows rows;
  std::unique_ptr<RetrievalEncoder> enc;
  torch::Tensor i2t, t2i;
};

// Every cell is -100 except each row's top k_test by `itc`, which holds its pair's logit
// scored alone (`image_rows`: rows are images).
void expect_reranked(Fixture& f, const torch::Tensor& got, const torch::Tensor& itc, int64_t k_test,
                     bool image_rows) {
  ASSERT_EQ(got.sizes(), itc.sizes());
  torch::Tensor top = std::get<1>(itc.topk(k_test, 1));
  for (int64_t q = 0; q < got.size(0); ++q) {
    std::vector<bool> cand(static_cast<size_t>(got.size(1)), false);
    for (int64_t j = 0; j < k_test; ++j) cand[static_cast<size_t>(top[q][j].item<int64_t>())] = true;
    for (int64_t g = 0; g < got.size(1); ++g) {
      const float v = got[q][g].item<float>();
      if (!cand[static_cast<size_t>(g)]) {
        EXPECT_EQ(v, -100.0f) << q << "," << g;
        continue;
      }
      EXPECT_NEAR(v, image_rows ? f.alone(q, g) : f.alone(g, q), 1e-5) << q << "," << g;
    }
  }
}

TEST(ItmRerank, BatchingsAgreeOnACompatEveModelAndFillTheRest) {
  Fixture f(test::retrieval_config());
  ItmReranker r(*f.enc, f.rows);
  const int64_t k_test = 3;
  auto [a1, b1] = r.rerank(f.i2t, f.t2i, k_test, ItmBatching::by_image, 2);
  // Images are read two rows at a time, each once.
  EXPECT_EQ(f.rows.reads, (std::vector<std::vector<int64_t>>{{0, 1}, {2, 3}, {4}}));
  auto [a2, b2] = r.rerank(f.i2t, f.t2i, k_test, ItmBatching::per_query, k_test);
  // A compat eve model routes without a capacity at inference: a pair's logit does not
  // depend on the other pairs of its pass.
  EXPECT_TRUE(torch::allclose(a1, a2, 0, 1e-5));
  EXPECT_TRUE(torch::allclose(b1, b2, 0, 1e-5));
  expect_reranked(f, a1, f.i2t, k_test, true);
  expect_reranked(f, b1, f.t2i, k_test, false);
  // k_test beyond the gallery takes every row.
  auto [a3, b3] = r.rerank(f.i2t, f.t2i, 100, ItmBatching::by_image, 4);
  EXPECT_EQ((a3 == -100.0f).sum().item<int64_t>(), 0);
  EXPECT_EQ((b3 == -100.0f).sum().item<int64_t>(), 0);
}

TEST(ItmRerank, CompatOfficialScoresEachQuerysCandidatesInOnePass) {
  ModelConfig c = test::retrieval_config();
  c.compat = "official";
  c.deterministic_routing = true;
  c.moe_capacity_factor = 0.5;
  c.moe_min_capacity = 1;
  Fixture f(c);
  ItmReranker r(*f.enc, f.rows);
  const int64_t k_test = 4;
  auto [a, b] = r.rerank(f.i2t, f.t2i, k_test, ItmBatching::per_query, k_test);
  torch::Tensor top_t = std::get<1>(f.i2t.topk(k_test, 1)), top_i = std::get<1>(f.t2i.topk(k_test, 1));
  // The released evaluation's passes: an image with its candidate texts in ITC order, a text
  // with its candidate images in ITC order.
  for (int64_t i = 0; i < f.i2t.size(0); ++i) {
    std::vector<const std::vector<int64_t>*> tok;
    for (int64_t j = 0; j < k_test; ++j) tok.push_back(&f.rows.texts[static_cast<size_t>(top_t[i][j].item<int64_t>())]);
    torch::Tensor want = f.enc->match(f.rows.images.narrow(0, i, 1).expand({k_test, -1, -1, -1}), tok);
    EXPECT_TRUE(torch::equal(a[i].index_select(0, top_t[i]), want)) << "image " << i;
    EXPECT_EQ((a[i] == -100.0f).sum().item<int64_t>(), f.i2t.size(1) - k_test);
  }
  for (int64_t t = 0; t < f.t2i.size(0); ++t) {
    std::vector<const std::vector<int64_t>*> tok(static_cast<size_t>(k_test), &f.rows.texts[static_cast<size_t>(t)]);
    torch::Tensor want = f.enc->match(f.rows.images.index_select(0, top_i[t]), tok);
    EXPECT_TRUE(torch::equal(b[t].index_select(0, top_i[t]), want)) << "text " << t;
    EXPECT_EQ((b[t] == -100.0f).sum().item<int64_t>(), f.t2i.size(1) - k_test);
  }
}

TEST(ItmRerank, OneQuerysCandidatesInOrderWithRepeats) {
  Fixture f(test::retrieval_config());
  ItmReranker r(*f.enc, f.rows);
  // An image query: its pixels are read once, whatever the passes.
  torch::Tensor s = r.query(true, 2, {6, 1, 6, 0, 1}, 2);
  ASSERT_EQ(s.size(0), 5);
  EXPECT_EQ(f.rows.reads, (std::vector<std::vector<int64_t>>{{2}}));
  const std::vector<int64_t> cand{6, 1, 6, 0, 1};
  for (int64_t j = 0; j < 5; ++j) EXPECT_NEAR(s[j].item<float>(), f.alone(2, cand[j]), 1e-5) << j;
  // A repeated candidate is scored each time it is listed, in any pass.
  EXPECT_NEAR(s[0].item<float>(), s[2].item<float>(), 1e-5);
  EXPECT_NEAR(s[1].item<float>(), s[4].item<float>(), 1e-5);
  // A text query reads its candidate images in their order, repeats included.
  f.rows.reads.clear();
  torch::Tensor u = r.query(false, 3, {4, 4, 0}, 0);
  EXPECT_EQ(f.rows.reads, (std::vector<std::vector<int64_t>>{{4, 4, 0}}));
  EXPECT_NEAR(u[0].item<float>(), f.alone(4, 3), 1e-5);
  EXPECT_NEAR(u[1].item<float>(), u[0].item<float>(), 1e-5);
  EXPECT_NEAR(u[2].item<float>(), f.alone(0, 3), 1e-5);
  EXPECT_EQ(r.query(true, 0, {}, 4).numel(), 0);
}

}  // namespace
}  // namespace eve::model
