// The CPU attention node against the same attention written with libtorch's differentiable
// operators: outputs and gradients, with and without key padding, on 1 and 2 threads.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "eve/model/attention_cpu.h"

namespace {

using torch::Tensor;

// softmax(q k^T * scale with padded keys at -inf) v, heads merged: [B, L, H * hd].
Tensor plain_attention(const Tensor& qkv, const Tensor& key_pad, double scale) {
  const int64_t B = qkv.size(0), L = qkv.size(1), H = qkv.size(3), hd = qkv.size(4);
  Tensor t = qkv.permute({2, 0, 3, 1, 4});  // [3, B, H, L, hd]
  Tensor scores = torch::matmul(t[0] * scale, t[1].transpose(-2, -1));
  if (key_pad.defined())
    scores = scores.masked_fill(key_pad.view({B, 1, 1, L}), -std::numeric_limits<float>::infinity());
  Tensor o = torch::matmul(torch::softmax(scores, -1), t[2]);
  return o.transpose(1, 2).reshape({B, L, H * hd});
}

struct Grads {
  Tensor out, dqkv;
};

template <class F>
Grads run(const Tensor& qkv_value, const Tensor& upstream, const F& attention) {
  Tensor qkv = qkv_value.clone().requires_grad_(true);
  Tensor out = attention(qkv);
  (out * upstream).sum().backward();
  return {out.detach(), qkv.grad()};
}

void expect_close(const Tensor& a, const Tensor& b, double tol, const char* what) {
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  EXPECT_LT((a - b).abs().max().item<double>(), tol) << what;
}

void check_case(int threads, bool padded) {
  const int before = at::get_num_threads();
  at::set_num_threads(threads);
  torch::manual_seed(7);
  const int64_t B = 3, L = 23, H = 4, hd = 8;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  Tensor qkv = torch::randn({B, L, 3, H, hd});
  Tensor upstream = torch::randn({B, L, H * hd});
  Tensor pad;
  if (padded) {
    pad = torch::zeros({B, L}, torch::kBool);
    pad[0].narrow(0, L - 5, 5).fill_(true);  // the last 5 keys of sample 0 are padding
    pad[2].narrow(0, 10, 1).fill_(true);
  }
  Grads want = run(qkv, upstream, [&](const Tensor& x) { return plain_attention(x, pad, scale); });
  Grads got = run(qkv, upstream, [&](const Tensor& x) {
    return eve::model::attention_cpu(x, pad, scale);
  });
  expect_close(got.out, want.out, 1e-5, "output");
  expect_close(got.dqkv, want.dqkv, 1e-5, "gradient of qkv");
  if (padded) {
    // A padded key gets no weight, so its k and v receive no gradient.
    EXPECT_EQ(got.dqkv[0].narrow(0, L - 5, 5).narrow(1, 1, 2).abs().max().item<float>(), 0.0f);
  }
  at::set_num_threads(before);
}

TEST(AttentionCpu, MatchesAutogradAttentionWithoutPadding) { check_case(2, false); }

TEST(AttentionCpu, MatchesAutogradAttentionWithKeyPadding) { check_case(2, true); }

TEST(AttentionCpu, OneThreadGivesTheSameResult) { check_case(1, true); }

// Each thread takes whole samples, so the thread count changes nothing, to the bit: outputs
// and gradients with 1, 2 and 3 threads are equal (not merely close to autograd's).
TEST(AttentionCpu, ThreadCountsGiveIdenticalBits) {
  const int before = at::get_num_threads();
  torch::manual_seed(11);
  const int64_t B = 5, L = 19, H = 2, hd = 8;
  Tensor qkv = torch::randn({B, L, 3, H, hd}), upstream = torch::randn({B, L, H * hd});
  Tensor pad = torch::zeros({B, L}, torch::kBool);
  pad[1].narrow(0, L - 4, 4).fill_(true);
  std::vector<Grads> runs;
  for (int threads : {1, 2, 3}) {
    at::set_num_threads(threads);
    runs.push_back(run(qkv, upstream, [&](const Tensor& x) { return eve::model::attention_cpu(x, pad, 0.3); }));
  }
  at::set_num_threads(before);
  for (size_t i = 1; i < runs.size(); ++i) {
    EXPECT_TRUE(runs[i].out.equal(runs[0].out)) << "output, run " << i;
    EXPECT_TRUE(runs[i].dqkv.equal(runs[0].dqkv)) << "gradient, run " << i;
  }
}

TEST(AttentionCpu, TakesNonContiguousInputAndNoGradMode) {
  torch::manual_seed(3);
  Tensor wide = torch::randn({2, 9, 3, 2, 8 * 2});  // every other value of the last dim used
  Tensor qkv = wide.narrow(4, 0, 8);
  ASSERT_FALSE(qkv.is_contiguous());
  Tensor want = plain_attention(qkv, Tensor(), 0.25);
  torch::NoGradGuard no_grad;
  expect_close(eve::model::attention_cpu(qkv, Tensor(), 0.25), want, 1e-5, "output");
}

TEST(AttentionCpu, AppliesOnlyToFloat32CpuWithoutDropout) {
  Tensor f = torch::zeros({1, 2, 3, 1, 4});
  EXPECT_TRUE(eve::model::attention_cpu_applies(f, 0.0));
  EXPECT_FALSE(eve::model::attention_cpu_applies(f, 0.1));
  EXPECT_FALSE(eve::model::attention_cpu_applies(f.to(torch::kBFloat16), 0.0));
}

}  // namespace
