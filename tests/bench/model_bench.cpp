// Benchmarks of the model, each against the machine's float32 matrix-product rate measured
// in the same run; timings never decide pass/fail.
//
//   eve-model-bench moe [--tokens 4096,16384] [--experts 32] [--width 768] [--inner 3072]
//                       [--threads 2] [--reps 2] [--dense-max 16384]
//       one modality-aware MoE layer, forward + backward, sparse (grouped GEMMs) vs the
//       GShard dense dispatch; one row per token count
//   eve-model-bench model [--config eve-small] [--batch 8] [--threads 2] [--reps 2]
//       the full model in vl mode (image + max_text_len tokens): forward (inference) and
//       forward + backward (training mode); prints seconds and GFLOP/s
//   eve-model-bench loader --data DIR [--split ids] [--config eve-base] [--res 224]
//                          [--batch 32] [--batches 8] [--threads 1]
//       eve-pretrain's loader alone (decode, random resized crop, flip, pixels to [-1, 1])
//       plus its MIM/MLM mask drawing; prints samples/s and samples/s per loader thread
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "eve/model/eve_model.h"
#include "eve/model/moe.h"
#include "eve/model/runtime.h"
#include "eve/train/loader.h"
#include "eve/train/msm.h"
#include "eve/train/pretrain.h"
#include "eve/train/run_common.h"

using namespace eve::model;

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// As the eve programs run (init_runtime): freed host memory kept for reuse unless
// EVE_MALLOC=system, which shows what glibc's default costs.
const char* host_memory_setup() {
  return eve::nn::retain_host_memory() ? "freed memory retained" : "system malloc";
}

double matmul_gflops() {
  torch::NoGradGuard ng;
  torch::Tensor a = torch::randn({2048, 2048}), b = torch::randn({2048, 2048});
  torch::mm(a, b);
  double best = 1e9;
  for (int i = 0; i < 5; ++i) {
    double t0 = now();
    torch::mm(a, b);
    best = std::min(best, now() - t0);
  }
  return 2.0 * 2048 * 2048 * 2048 / best / 1e9;
}

struct Timing {
  double seconds = 0;
  int64_t kept = 0;
};

Timing time_layer(MoE& moe, int64_t S, Dispatch d, int reps) {
  torch::Tensor x = torch::randn({S, moe->wg->weight.size(1)}).requires_grad_(true);
  torch::Tensor modality = torch::randint(0, 2, {S}, torch::kLong);
  RoutingOptions opt;
  opt.dispatch = d;
  opt.capacity = moe_capacity(S, moe->num_experts(), 1.0, 4);
  Timing t;
  t.seconds = 1e9;
  for (int r = 0; r < reps; ++r) {
    moe->zero_grad();
    double t0 = now();
    MoeResult out = moe->forward(x, modality, opt);
    out.y.sum().backward();
    t.seconds = std::min(t.seconds, now() - t0);
    t.kept = out.load.kept.sum().item<int64_t>();
  }
  return t;
}

std::vector<int64_t> parse_list(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(std::stoll(item));
  return out;
}

}  // namespace

// Matmul FLOPs of one vl forward pass (projections, attention, FFN/experts, patch embed).
double forward_flops(const ModelConfig& c, int64_t B, int64_t L, int64_t N) {
  const double D = c.vision_width, F = c.intermediate_size;
  double per_token = 0;
  for (int l = 0; l < c.num_hidden_layers; ++l)
    per_token += 2 * (4 * D * D) + 2 * (c.is_moe_layer(l) ? 2 : 1) * (2 * D * F);
  double attn = c.num_hidden_layers * 2.0 * 2.0 * double(L) * double(L) * D;
  double patch = 2.0 * N * 3 * c.patch_size * c.patch_size * D;
  return B * (per_token * L + attn + patch);
}

int model_bench(int argc, char** argv) {
  std::string preset = "eve-small";
  int64_t batch = 8;
  int threads = 2, reps = 2;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--config") preset = v;
    else if (k == "--batch") batch = std::stoll(v);
    else if (k == "--threads") threads = std::stoi(v);
    else if (k == "--reps") reps = std::stoi(v);
    else {
      std::fprintf(stderr, "eve-model-bench: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  at::set_num_threads(threads);
  const char* memory = host_memory_setup();
  torch::manual_seed(0);
  ModelConfig c = load_config(preset);
  const double rate = matmul_gflops();
  EveModel m(c);
  EncoderInput in;
  in.image = torch::randn({batch, 3, c.image_res, c.image_res});
  in.text_ids = torch::randint(5, c.vocab_size, {batch, c.max_text_len}, torch::kLong);
  const int64_t L = c.num_patches() + 1 + c.max_text_len;
  const double flops = forward_flops(c, batch, L, c.num_patches());
  double fwd = 1e9, train = 1e9;
  m->eval();
  for (int r = 0; r < reps + 1; ++r) {  // the first run warms up
    torch::NoGradGuard ng;
    double t0 = now();
    m->encode(Mode::vl, in);
    if (r) fwd = std::min(fwd, now() - t0);
  }
  m->train();
  for (int r = 0; r < reps; ++r) {
    m->zero_grad();
    double t0 = now();
    EncoderOutput o = m->encode(Mode::vl, in);
    (o.hidden.mean() + o.aux).backward();
    train = std::min(train, now() - t0);
  }
  std::printf("%s batch %lld, %lld tokens/sample, %d threads, %s; matmul %.1f GFLOP/s\n",
              preset.c_str(), (long long)batch, (long long)L, threads, memory, rate);
  std::printf("c++ forward %.3f s (%.0f GFLOP/s, %.0f%% of matmul); fwd+bwd %.3f s (%.0f GFLOP/s, %.0f%%)\n",
              fwd, flops / fwd / 1e9, 100 * flops / fwd / 1e9 / rate, train,
              3 * flops / train / 1e9, 100 * 3 * flops / train / 1e9 / rate);
  return 0;
}

int moe_bench(int argc, char** argv) {
  std::vector<int64_t> tokens{4096, 16384};
  int64_t experts = 32, width = 768, inner = 3072, dense_max = 16384;
  int threads = 2, reps = 2;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--tokens") tokens = parse_list(v);
    else if (k == "--experts") experts = std::stoll(v);
    else if (k == "--width") width = std::stoll(v);
    else if (k == "--inner") inner = std::stoll(v);
    else if (k == "--threads") threads = std::stoi(v);
    else if (k == "--reps") reps = std::stoi(v);
    else if (k == "--dense-max") dense_max = std::stoll(v);
    else {
      std::fprintf(stderr, "eve-model-bench: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  at::set_num_threads(threads);
  const char* memory = host_memory_setup();
  torch::manual_seed(0);
  MoE moe(width, inner, experts, true, "quick_gelu");
  std::printf("MoE layer fwd+bwd: E=%lld top-2 D=%lld F=%lld, %d threads, %s\n", (long long)experts,
              (long long)width, (long long)inner, threads, memory);
  std::printf("%8s %10s %10s %8s %14s %14s\n", "tokens", "sparse s", "dense s", "ratio",
              "matmul GFLOP/s", "sparse/matmul");
  for (int64_t S : tokens) {
    // The matmul rate is measured just before and after the sparse layer and the higher one
    // kept, so a busy machine lowers the sparse layer's share rather than inflating it.
    double rate = matmul_gflops();
    Timing sp = time_layer(moe, S, Dispatch::sparse, reps);
    rate = std::max(rate, matmul_gflops());
    // Expert GEMM work: forward 2 GEMMs of 2*n*D*F flops, backward twice that.
    double flops = 3.0 * 2.0 * 2.0 * double(sp.kept) * double(width) * double(inner);
    double frac = flops / sp.seconds / 1e9 / rate;
    if (S <= dense_max) {
      Timing de = time_layer(moe, S, Dispatch::dense, 1);
      std::printf("%8lld %10.3f %10.3f %7.2fx %14.1f %13.0f%%\n", (long long)S, sp.seconds,
                  de.seconds, de.seconds / sp.seconds, rate, 100 * frac);
    } else {
      std::printf("%8lld %10.3f %10s %8s %14.1f %13.0f%%\n", (long long)S, sp.seconds, "skipped",
                  "-", rate, 100 * frac);
    }
    std::fflush(stdout);
  }
  return 0;
}

int loader_bench(int argc, char** argv) {
  std::string data, split = "ids", preset = "eve-base";
  int64_t res = 224, batch = 32, batches = 8;
  int threads = 1;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--data") data = v;
    else if (k == "--split") split = v;
    else if (k == "--config") preset = v;
    else if (k == "--res") res = std::stoll(v);
    else if (k == "--batch") batch = std::stoll(v);
    else if (k == "--batches") batches = std::stoll(v);
    else if (k == "--threads") threads = std::stoi(v);
    else {
      std::fprintf(stderr, "eve-model-bench: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  at::set_num_threads(1);
  ModelConfig config = load_config(preset);
  config.image_res = static_cast<int>(res);
  eve::train::PretrainOptions defaults;
  auto lo = eve::train::training_loader_options(data, batch, 0, 1, 1, config, threads, defaults.prefetch,
                                                defaults.crop_scale_min, defaults.flip, defaults.rand_augment);
  eve::train::Loader loader(eve::train::read_pair_samples(data, split, 0), lo);
  eve::text::TokenizerInfo tok;
  tok.vocab_size = config.vocab_size;
  eve::train::MsmOptions msm;
  auto one = [&](int64_t micro) {
    eve::train::Batch b = loader.next();
    eve::train::make_msm_masks(b.ids, b.mask, config.num_patches(), msm, tok, 1, micro, b.first);
  };
  one(0);  // the pool and the first prefetch started: time the steady state
  double t0 = now();
  for (int64_t m = 1; m <= batches; ++m) one(m);
  double secs = now() - t0, rate = double(batch * batches) / secs;
  std::printf("loader %s at %lldpx: %lld batches of %lld, %d loader threads: %.1f samples/s, %.1f per thread\n",
              preset.c_str(), (long long)res, (long long)batches, (long long)batch, threads, rate, rate / threads);
  return 0;
}

int main(int argc, char** argv) {
  std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "loader") return loader_bench(argc, argv);
  if (cmd == "moe") return moe_bench(argc, argv);
  if (cmd == "model") return model_bench(argc, argv);
  std::fprintf(stderr, "usage: eve-model-bench moe|model|loader [options]\n");
  return 2;
}
