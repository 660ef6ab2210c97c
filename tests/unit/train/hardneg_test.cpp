// Global hard-negative mining for ITM: the seeded draw over the global batch, fetching each
// rank's chosen rows across ranks (two or three ranks as threads of this process, Gloo on
// loopback), and the contrastive loss of 2 ranks = 1 process with the global batch (every rank
// keeps the negatives of its own slice of the global draw).
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <ATen/CPUGeneratorImpl.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "eve/core/error.h"
#include "eve/model/moe.h"
#include "eve/train/contrastive.h"
#include "eve/train/distributed.h"
#include "common/model_test_util.h"

namespace {

using eve::train::contrastive_loss;
using eve::train::ContrastiveLoss;
using eve::train::ContrastiveOptions;
using eve::train::DistEnv;
using eve::train::HardNegatives;
using eve::train::ProcessGroup;
using eve::train::sample_hard_negatives;

// A free loopback port for the rendezvous.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  ::close(fd);
  return ntohs(a.sin_port);
}

// Runs body(pg) on `world` threads, each rank of one Gloo group on loopback.
void on_ranks(int world, const std::function<void(ProcessGroup&)>& body) {
  const int port = free_port();
  std::vector<std::thread> threads;
  std::vector<std::string> errors(static_cast<size_t>(world));
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      try {
        DistEnv env;
        env.rank = r;
        env.world = world;
        env.local_rank = r;
        env.master_port = port;
        ProcessGroup pg(env, 30);
        body(pg);
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(r)] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < world; ++r) EXPECT_EQ(errors[static_cast<size_t>(r)], "") << "rank " << r;
}

torch::Tensor random_logits(int64_t n, uint64_t seed) {
  torch::manual_seed(seed);
  return torch::randn({n, n}) * 3;
}

TEST(HardNegatives, OtherGroupsOnlyAndTheSeedAloneFixesTheDraw) {
  const torch::Tensor groups = torch::tensor({0, 0, 1, 2, 2, 2, 3, 4}, torch::kInt64);
  const torch::Tensor logits = random_logits(8, 5);
  for (uint64_t seed = 0; seed < 50; ++seed) {
    HardNegatives h = sample_hard_negatives(logits, groups, seed);
    ASSERT_EQ(h.text_of_image.sizes(), (std::vector<int64_t>{8}));
    ASSERT_EQ(h.image_of_text.sizes(), (std::vector<int64_t>{8}));
    EXPECT_FALSE(groups.index_select(0, h.text_of_image).eq(groups).any().item<bool>()) << seed;
    EXPECT_FALSE(groups.index_select(0, h.image_of_text).eq(groups).any().item<bool>()) << seed;
  }
  // torch's default generator plays no part once a seed is given; another seed draws others.
  torch::manual_seed(1);
  HardNegatives a = sample_hard_negatives(logits, groups, 77);
  torch::manual_seed(2);
  torch::randn({100});
  HardNegatives b = sample_hard_negatives(logits, groups, 77);
  EXPECT_TRUE(a.text_of_image.equal(b.text_of_image));
  EXPECT_TRUE(a.image_of_text.equal(b.image_of_text));
  bool differs = false;
  for (uint64_t seed = 78; seed < 88 && !differs; ++seed) {
    HardNegatives c = sample_hard_negatives(logits, groups, seed);
    differs = !c.text_of_image.equal(a.text_of_image) || !c.image_of_text.equal(a.image_of_text);
  }
  EXPECT_TRUE(differs);
  // Without a seed the default generator draws, as the one-process code always did.
  torch::manual_seed(9);
  HardNegatives d = sample_hard_negatives(logits, groups, std::nullopt);
  torch::manual_seed(9);
  HardNegatives e = sample_hard_negatives(logits, groups, std::nullopt);
  EXPECT_TRUE(d.text_of_image.equal(e.text_of_image));
}

TEST(HardNegatives, DrawsWhatMultinomialDrawsWithoutReadingTheDevice) {
  // The exponential race draws what torch::multinomial(w, 1) draws from the same generator
  // (so runs made before it keep their negatives), and reads nothing back from the weights'
  // device: multinomial checks its weights with a read.
  torch::manual_seed(3);
  torch::Tensor w = torch::rand({64, 64}) * torch::rand({64, 64}).gt(0.3);
  w[5].zero_();  // a row without weight draws uniformly
  for (uint64_t seed : {0u, 1u, 77u}) {
    at::Generator g1 = at::make_generator<at::CPUGeneratorImpl>(seed);
    at::Generator g2 = at::make_generator<at::CPUGeneratorImpl>(seed);
    torch::Tensor filled = w.clone();
    filled[5].fill_(1.0);
    torch::Tensor want = torch::multinomial(filled, 1, false, g1).view({-1});
    eve::model::OpCounter ops;
    torch::Tensor got = eve::train::sample_rows(w, g2);
    EXPECT_TRUE(ops.host_reads().empty());
    EXPECT_TRUE(got.equal(want)) << seed;
  }
  torch::manual_seed(4);
  torch::Tensor want = torch::multinomial(w + w.sum(1, true).le(0), 1).view({-1});
  torch::manual_seed(4);
  eve::model::OpCounter ops;
  torch::Tensor got = eve::train::sample_rows(w);
  EXPECT_TRUE(ops.host_reads().empty());
  EXPECT_TRUE(got.equal(want));
}

TEST(HardNegatives, DrawFollowsTheSoftmaxOfEachRowForTextsAndOfEachColumnForImages) {
  // Image 0 is far closer to text 1 than to text 2; text 0 far closer to image 2 than to 1.
  torch::Tensor logits = torch::tensor({{9.f, 4.f, 0.f}, {0.f, 9.f, 0.f}, {6.f, 0.f, 9.f}});
  const torch::Tensor groups = torch::arange(3, torch::kInt64);
  int text1 = 0, image2 = 0;
  const int draws = 400;
  for (int s = 0; s < draws; ++s) {
    HardNegatives h = sample_hard_negatives(logits, groups, static_cast<uint64_t>(s));
    text1 += h.text_of_image[0].item<int64_t>() == 1;
    image2 += h.image_of_text[0].item<int64_t>() == 2;
  }
  // softmax odds e^4 : e^0 -> 98.2 %, e^6 : e^0 -> 99.8 %.
  EXPECT_GT(text1, draws * 95 / 100);
  EXPECT_GT(image2, draws * 97 / 100);
}

TEST(HardNegatives, FetchRowsBringsEachRankTheRowsItAsksForFromAnyRank) {
  // Global rows hold their own index; rank r holds rows [3r, 3r + 3) as [3, 2] float and
  // int64 tensors. Asked-for rows repeat, come from one rank only, or from none of it.
  const int world = 3;
  const int64_t n = 3;
  const torch::Tensor wanted = torch::tensor({{8, 8, 0, 4}, {0, 1, 2, 2}, {5, 3, 7, 6}}, torch::kInt64);
  std::vector<torch::Tensor> got_f(world), got_i(world);
  on_ranks(world, [&](ProcessGroup& pg) {
    torch::Tensor rows = torch::arange(pg.rank() * n, (pg.rank() + 1) * n, torch::kInt64);
    torch::Tensor f = torch::stack({rows.to(torch::kFloat32), -rows.to(torch::kFloat32)}, 1);
    torch::Tensor i = torch::stack({rows, rows * 10}, 1);
    got_f[static_cast<size_t>(pg.rank())] = pg.fetch_rows(f, wanted);
    got_i[static_cast<size_t>(pg.rank())] = pg.fetch_rows(i, wanted);
  });
  for (int r = 0; r < world; ++r) {
    torch::Tensor w = wanted[r];
    ASSERT_TRUE(got_f[static_cast<size_t>(r)].defined()) << r;
    EXPECT_TRUE(got_f[static_cast<size_t>(r)].equal(torch::stack({w.to(torch::kFloat32), -w.to(torch::kFloat32)}, 1)))
        << r << "\n" << got_f[static_cast<size_t>(r)];
    EXPECT_TRUE(got_i[static_cast<size_t>(r)].equal(torch::stack({w, w * 10}, 1))) << r;
  }
  // One process: the rows of wanted[0]; a row outside the gathered batch is an error.
  ProcessGroup one(DistEnv{}, 5);
  torch::Tensor local = torch::arange(4, torch::kInt64) * 2;
  EXPECT_TRUE(one.fetch_rows(local, torch::tensor({{3, 0, 3}}, torch::kInt64)).equal(torch::tensor({6, 0, 6}, torch::kLong)));
  try {
    one.fetch_rows(local, torch::tensor({{4}}, torch::kInt64));
    FAIL() << "row 4 of 4";
  } catch (const eve::Error& e) {
    EXPECT_NE(std::string(e.what()).find("outside the 4 gathered rows"), std::string::npos) << e.what();
  }
}

// The small retrieval model without token dropping or aux loss (both depend on how many tokens
// a pass routes), with wide weights so that the negatives matter.
eve::model::ModelConfig det_config() {
  eve::model::ModelConfig c = eve::model::test::retrieval_config();
  c.moe_capacity_factor = 100.0;
  c.moe_lossweight = 0.0;
  return c;
}

eve::model::EveModel det_model() {
  torch::manual_seed(3);
  eve::model::EveModel m(det_config());
  eve::model::test::widen_weights(*m);
  return m;
}

TEST(HardNegatives, TwoRanksComputeTheOneProcessLossAndGradient) {
  const int world = 2;
  const int64_t B = 8, b = B / world;
  const eve::model::ModelConfig c = det_config();
  auto batch = eve::model::test::make_batch(c, B, c.max_text_len, 0, 21);
  const torch::Tensor groups = torch::tensor({0, 0, 1, 2, 3, 3, 4, 5}, torch::kInt64);
  ContrastiveOptions o;
  o.negative_seed = 4242;

  eve::model::EveModel m1 = det_model();
  ContrastiveLoss one = contrastive_loss(*m1, batch["image"], batch["text_ids"], batch["text_mask"], groups, o, nullptr);
  one.total.backward();

  std::vector<eve::model::EveModel> models;
  for (int r = 0; r < world; ++r) models.push_back(det_model());
  std::vector<ContrastiveLoss> parts(world);
  on_ranks(world, [&](ProcessGroup& pg) {
    const int r = pg.rank();
    auto rows = [&](const torch::Tensor& t) { return t.narrow(0, r * b, b); };
    ContrastiveLoss l = contrastive_loss(*models[static_cast<size_t>(r)], rows(batch["image"]),
                                         rows(batch["text_ids"]), rows(batch["text_mask"]), rows(groups), o, &pg);
    l.total.backward();
    std::vector<torch::Tensor> grads;
    for (auto& p : models[static_cast<size_t>(r)]->parameters())
      if (p.grad().defined()) grads.push_back(p.grad());
    pg.average(grads);
    parts[static_cast<size_t>(r)] = l;
  });
  EXPECT_NEAR((parts[0].itm.item<double>() + parts[1].itm.item<double>()) / 2, one.itm.item<double>(), 1e-5);
  EXPECT_NEAR((parts[0].itc.item<double>() + parts[1].itc.item<double>()) / 2, one.itc.item<double>(), 1e-5);
  EXPECT_NEAR((parts[0].itm_accuracy.item<double>() + parts[1].itm_accuracy.item<double>()) / 2, one.itm_accuracy.item<double>(), 1e-9);
  auto p1 = m1->named_parameters();
  auto p2 = models[1]->named_parameters();
  double worst = 0, largest = 0;
  for (const auto& kv : p1) {
    const torch::Tensor& g1 = kv.value().grad();
    const torch::Tensor& g2 = p2[kv.key()].grad();
    ASSERT_EQ(g1.defined(), g2.defined()) << kv.key();
    if (!g1.defined()) continue;
    worst = std::max(worst, (g1 - g2).abs().max().item<double>());
    largest = std::max(largest, g1.abs().max().item<double>());
  }
  EXPECT_GT(largest, 1e-3);
  EXPECT_LT(worst, 1e-5 * std::max(1.0, largest)) << "largest gradient entry " << largest;

  // The same ranks without a shared seed could draw differently: refused.
  ContrastiveOptions unseeded;
  on_ranks(world, [&](ProcessGroup& pg) {
    auto rows = [&](const torch::Tensor& t) { return t.narrow(0, pg.rank() * b, b); };
    try {
      contrastive_loss(*models[static_cast<size_t>(pg.rank())], rows(batch["image"]), rows(batch["text_ids"]),
                       rows(batch["text_mask"]), rows(groups), unseeded, &pg);
      ADD_FAILURE() << "no negative_seed with 2 ranks";
    } catch (const eve::Error& e) {
      EXPECT_NE(std::string(e.what()).find("need ContrastiveOptions::negative_seed"), std::string::npos);
    }
  });
}

}  // namespace

// Every collective eve uses, through a real group of one process: Gloo on the CPU here and,
// on a CUDA build with a GPU, NCCL on cuda:0 (NCCL allows one rank per GPU, so a single GPU
// can host only a group of one; the arithmetic of several ranks is tested with Gloo above).
TEST(ProcessGroupOfOne, EveryCollectiveOnEachDevice) {
  std::vector<torch::Device> devices{torch::kCPU};
#ifdef EVE_CUDA
  if (torch::cuda::is_available()) devices.emplace_back("cuda:0");
#endif
  for (const torch::Device& device : devices) {
    SCOPED_TRACE(device.str());
    DistEnv env;
    env.master_port = free_port();
    ProcessGroup pg(env, 30, device, /*connect_alone=*/true);
    ASSERT_TRUE(pg.active());
    EXPECT_STREQ(pg.backend(), device.is_cuda() ? "nccl" : "gloo");
    torch::manual_seed(11);
    const auto opts = torch::TensorOptions().device(device);
    std::vector<torch::Tensor> ts{torch::randn({5, 3}, opts), torch::randn({7}, opts)};
    std::vector<torch::Tensor> before{ts[0].clone(), ts[1].clone()};
    pg.broadcast(ts);
    pg.average(ts, /*bucket_bytes=*/16);  // two buckets
    for (size_t i = 0; i < ts.size(); ++i) {
      EXPECT_EQ(ts[i].device(), device);
      EXPECT_TRUE(torch::equal(ts[i], before[i]));
    }
    torch::Tensor local = torch::randn({4, 3}, opts).requires_grad_();
    torch::Tensor all = pg.gather_rows(local);
    EXPECT_TRUE(torch::equal(all.detach(), local.detach()));
    (all * torch::arange(12, opts).view({4, 3})).sum().backward();
    EXPECT_TRUE(torch::equal(local.grad(), torch::arange(12, opts).view({4, 3}).to(local.dtype())));
    const torch::Tensor wanted = torch::tensor({{3, 0, 3}}, torch::kInt64);
    torch::Tensor rows = pg.fetch_rows(local.detach(), wanted);
    EXPECT_EQ(rows.device(), device);
    EXPECT_TRUE(torch::equal(rows, local.detach().index_select(0, wanted[0].to(device))));
    EXPECT_EQ(pg.sum({1.5, -2.0}), (std::vector<double>{1.5, -2.0}));
    pg.barrier();
  }
}

TEST(HardNegatives, OneProcessContrastiveStepReadsNothingFromTheDevice) {
  // ITC, the hard-negative draw, the fetch of the chosen rows, ITM and backward, with the MoE
  // in the layout a GPU runs and its load statistics off (a step that does not log): no value
  // comes back to the host, so a GPU is never made to wait.
  const eve::model::ModelConfig c = det_config();
  auto batch = eve::model::test::make_batch(c, 8, c.max_text_len, 0, 21);
  const torch::Tensor groups = torch::tensor({0, 0, 1, 2, 3, 3, 4, 5}, torch::kInt64);
  ContrastiveOptions o;
  o.negative_seed = 4242;
  eve::model::EveModel m = det_model();
  m->set_expert_layout(eve::model::ExpertLayout::capacity);
  m->set_want_load(false);
  eve::model::OpCounter ops;
  ContrastiveLoss l = contrastive_loss(*m, batch["image"], batch["text_ids"], batch["text_mask"], groups, o, nullptr);
  l.total.backward();
  EXPECT_GT(ops.total(), 100);
  EXPECT_TRUE(ops.host_reads().empty()) << ops.host_reads().begin()->first;
}
