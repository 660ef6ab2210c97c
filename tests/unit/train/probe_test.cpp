// The linear probe's fit and split on synthetic features whose answer is known.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "eve/core/error.h"
#include "eve/core/rng.h"
#include "eve/train/probe.h"

namespace {

using eve::train::fit_linear_probe;
using eve::train::probe_held_out;

constexpr int kRows = 2000, kDim = 16, kClasses = 4;

// Rows whose first kClasses dimensions put a bump of `spread` on the class's own axis, plus
// unit noise everywhere: linearly separable with a wide margin when spread is large.
struct Toy {
  std::vector<float> x;
  std::vector<int> y;
  std::vector<bool> held_out;
};

Toy make_toy(double spread, uint64_t seed) {
  eve::Rng rng(seed);
  Toy t;
  for (int i = 0; i < kRows; ++i) {
    const int c = rng.below(kClasses);
    t.y.push_back(c);
    for (int d = 0; d < kDim; ++d) t.x.push_back(static_cast<float>(rng.normal() + (d == c ? spread : 0.0)));
    t.held_out.push_back(probe_held_out("row-" + std::to_string(i), seed, 0.25));
  }
  return t;
}

TEST(LinearProbe, SeparableLabelsAreLearnedAlmostPerfectly) {
  Toy t = make_toy(8.0, 1);
  auto fit = fit_linear_probe(t.x, kDim, t.y, kClasses, t.held_out);
  EXPECT_GE(fit.accuracy, 0.99);
  EXPECT_LT(fit.majority, 0.35);  // four roughly balanced classes
  EXPECT_EQ(fit.train + fit.test, kRows);
  EXPECT_GT(fit.test, kRows / 5);
  EXPECT_LT(fit.test, kRows * 3 / 10);
}

TEST(LinearProbe, ShuffledLabelsScoreAboutTheMajority) {
  Toy t = make_toy(8.0, 2);
  eve::Rng rng(99);
  rng.shuffle(t.y);  // the features no longer say anything about the labels
  auto fit = fit_linear_probe(t.x, kDim, t.y, kClasses, t.held_out);
  EXPECT_NEAR(fit.accuracy, fit.majority, 0.06);
  EXPECT_LT(fit.accuracy, 0.35);
}

TEST(LinearProbe, NoisierFeaturesScoreBetweenChanceAndPerfect) {
  Toy t = make_toy(1.0, 3);
  auto fit = fit_linear_probe(t.x, kDim, t.y, kClasses, t.held_out);
  EXPECT_GT(fit.accuracy, fit.majority + 0.15);
  EXPECT_LT(fit.accuracy, 0.95);
}

TEST(LinearProbe, SameInputsGiveTheSameResult) {
  Toy t = make_toy(1.0, 4);
  auto a = fit_linear_probe(t.x, kDim, t.y, kClasses, t.held_out);
  auto b = fit_linear_probe(t.x, kDim, t.y, kClasses, t.held_out);
  EXPECT_EQ(a.accuracy, b.accuracy);
  EXPECT_EQ(a.majority, b.majority);
  EXPECT_EQ(a.l2, b.l2);
}

TEST(LinearProbe, AnEmptyPartIsAnError) {
  Toy t = make_toy(8.0, 5);
  std::vector<bool> none(t.y.size(), false);
  EXPECT_THROW(fit_linear_probe(t.x, kDim, t.y, kClasses, none), eve::Error);
  EXPECT_THROW(fit_linear_probe(t.x, kDim + 1, t.y, kClasses, t.held_out), eve::Error);
}

TEST(LinearProbe, HeldOutShareFollowsTheFractionAndTheSeed) {
  int held = 0, moved = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    const std::string id = "img-" + std::to_string(i);
    const bool a = probe_held_out(id, 7, 0.25);
    held += a;
    moved += a != probe_held_out(id, 8, 0.25);
    EXPECT_EQ(a, probe_held_out(id, 7, 0.25));
  }
  EXPECT_NEAR(static_cast<double>(held) / n, 0.25, 0.015);
  EXPECT_GT(moved, n / 5);  // another seed draws another split
  // A larger fraction only adds records to the held-out part: none leaves it.
  for (int i = 0; i < 1000; ++i) {
    const std::string id = "img-" + std::to_string(i);
    if (probe_held_out(id, 7, 0.25)) EXPECT_TRUE(probe_held_out(id, 7, 0.5));
  }
}

}  // namespace
