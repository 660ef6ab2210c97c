#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>

#include "eve/search/topk.h"

namespace {

using eve::search::Hit;

std::vector<std::vector<Hit>> brute_force(const torch::Tensor& q, const torch::Tensor& g, int k) {
  std::vector<std::vector<Hit>> out(q.size(0));
  for (int64_t i = 0; i < q.size(0); ++i) {
    std::vector<Hit> row;
    for (int64_t j = 0; j < g.size(0); ++j)
      row.push_back({j, eve::search::exact_dot(q[i].data_ptr<float>(), g[j].data_ptr<float>(), q.size(1))});
    std::stable_sort(row.begin(), row.end(), eve::search::better);
    row.resize(std::min<size_t>(k, row.size()));
    out[i] = row;
  }
  return out;
}

std::vector<std::vector<Hit>> search(const torch::Tensor& q, const torch::Tensor& g,
                                     eve::search::TopkOptions o) {
  eve::search::MemoryRows qs(q.data_ptr<float>(), q.size(0), q.size(1));
  eve::search::MemoryRows gs(g.data_ptr<float>(), g.size(0), g.size(1));
  std::vector<std::vector<Hit>> all;
  int64_t expect_next = 0;
  eve::search::topk_search(qs, gs, o, [&](int64_t first, std::vector<std::vector<Hit>>& hits) {
    EXPECT_EQ(first, expect_next);
    expect_next += static_cast<int64_t>(hits.size());
    for (auto& h : hits) all.push_back(h);
  });
  return all;
}

void expect_same(const std::vector<std::vector<Hit>>& a, const std::vector<std::vector<Hit>>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].size(), b[i].size()) << "query " << i;
    for (size_t j = 0; j < a[i].size(); ++j) {
      EXPECT_EQ(a[i][j].index, b[i][j].index) << "query " << i << " rank " << j;
      EXPECT_FLOAT_EQ(a[i][j].score, b[i][j].score);
    }
  }
}

TEST(Topk, MatchesBruteForceForAnyBlockingAndThreads) {
  torch::manual_seed(3);
  auto q = torch::randn({37, 16});
  auto g = torch::randn({203, 16});
  auto expected = brute_force(q, g, 7);
  for (int threads : {1, 3}) {
    at::set_num_threads(threads);
    eve::search::TopkOptions o;
    o.k = 7;
    o.threads = threads;
    expect_same(search(q, g, o), expected);
  }
}

TEST(Topk, SpansSeveralTilesAndIsBitReproducibleAcrossThreads) {
  torch::manual_seed(5);
  const int64_t ng = eve::search::kGalleryTile * 2 + 17, nq = eve::search::kQueryTile + 3;
  auto q = torch::randn({nq, 8});
  auto g = torch::randn({ng, 8});
  g = g / g.norm(2, 1, true);  // unit rows: a query equal to a row scores it highest
  g[ng - 1] = g[1];            // a duplicate in the last, padded tile
  q[0] = g[1];
  eve::search::TopkOptions o;
  o.k = 4;
  at::set_num_threads(1);
  o.threads = 1;
  auto one = search(q, g, o);
  at::set_num_threads(2);
  o.threads = 2;
  auto two = search(q, g, o);
  expect_same(one, two);
  EXPECT_EQ(one[0][0].index, 1);
  EXPECT_EQ(one[0][1].index, ng - 1);
  EXPECT_EQ(one[0][0].score, one[0][1].score);
}

TEST(Topk, TiesGoToTheLowerGalleryRow) {
  // Rows 2, 5 and 9 score the same; the two kept must be 2 and 5, across chunk borders.
  auto g = torch::zeros({12, 2});
  for (int r : {2, 5, 9}) g[r][0] = 1.0;
  g[7][0] = 2.0;
  auto q = torch::tensor({{1.0f, 0.0f}});
  eve::search::TopkOptions o;
  o.k = 3;
  auto hits = search(q, g, o);
  ASSERT_EQ(hits[0].size(), 3u);
  EXPECT_EQ(hits[0][0].index, 7);
  EXPECT_EQ(hits[0][1].index, 2);
  EXPECT_EQ(hits[0][2].index, 5);
}

TEST(Topk, CountsQueriesWhoseRescoringMarginIsTooSmall) {
  // Query 0 has 100 copies of itself in the gallery, more than k + kRescoreMargin rows
  // within float32 rounding of its k-th score: the search must say so. Query 1 is an
  // ordinary row with clear gaps between its scores: nothing to report.
  torch::manual_seed(3);
  auto g = torch::randn({3000, 32});
  g = g / g.norm(2, 1, true);
  auto q = g.narrow(0, 0, 2).clone();
  for (int64_t r = 100; r < 200; ++r) g[r] = q[0];
  eve::search::MemoryRows qs(q.data_ptr<float>(), 2, 32);
  eve::search::MemoryRows gs(g.data_ptr<float>(), 3000, 32);
  eve::search::TopkOptions o;
  o.k = 5;
  std::vector<std::vector<Hit>> hits;
  const auto stats = eve::search::topk_search(qs, gs, o, [&](int64_t, std::vector<std::vector<Hit>>& h) { hits = h; });
  EXPECT_EQ(stats.crowded, 1);
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_EQ(hits[1][0].index, 1);
  const auto one = eve::search::topk_search(eve::search::MemoryRows(q.data_ptr<float>() + 32, 1, 32), gs, o,
                                            [](int64_t, std::vector<std::vector<Hit>>&) {});
  EXPECT_EQ(one.crowded, 0);
}

TEST(Topk, KLargerThanGalleryReturnsEveryRow) {
  auto q = torch::randn({3, 4});
  auto g = torch::randn({5, 4});
  eve::search::TopkOptions o;
  o.k = 50;
  expect_same(search(q, g, o), brute_force(q, g, 50));
}

TEST(Topk, DimensionMismatchIsAnError) {
  auto q = torch::randn({3, 4});
  auto g = torch::randn({5, 6});
  eve::search::TopkOptions o;
  try {
    search(q, g, o);
    FAIL();
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("4 columns but the gallery has 6"), std::string::npos);
  }
}

}  // namespace
