// Benchmarks of the model, each against the machine's float32 matrix-product rate measured
// in the same run; timings never decide pass/fail.
//
//   eve-model-bench moe [--tokens 4096,16384] [--experts 32] [--width 768] [--inner 3072]
//                       [--threads 2] [--reps 2] [--dense-max 16384]
//       one modality-aware MoE layer, forward + backward, sparse with grouped GEMMs, sparse
//       with the fixed-capacity layout (batched GEMMs) and the GShard dense dispatch; one row
//       per token count
//   eve-model-bench syncs [--config eve-small] [--batch 4] [--experts E] [--layout capacity]
//       one training forward + backward in vl mode over a batch with padded text: the
//       operators that read the device to the host, and all operators, counted
//   eve-model-bench model [--config eve-small] [--batch 8] [--threads 2] [--reps 2]
//       the full model in vl mode (image + max_text_len tokens): forward (inference) and
//       forward + backward (training mode); prints seconds and GFLOP/s
//   eve-model-bench train-memory [--config eve-base] [--image-res 384] [--batch 2]
//                       [--threads 2] [--reps 2] [--checkpoint 0|1]
//       one VQA fine-tuning step (vl forward, VQA head, BCE + MoE aux loss, backward), with or
//       without gradient checkpointing; prints the best step time and the process's peak
//       resident memory beside that of the weights and gradients. Run one process per
//       setting: the peak is the whole process's, so each must start fresh.
//   eve-model-bench optim [--config eve-small] [--threads 2] [--steps 5]
//       gradient clipping + AdamW over the model's parameters: the per-tensor algorithm the
//       trainers had (kept here as the baseline) against the flat buffers; aten operations
//       per step (outermost calls), host syncs per step and time per step
//   eve-model-bench loader --data DIR [--split ids] [--config eve-base] [--res 224]
//                          [--batch 32] [--batches 8] [--threads 1]
//       eve-pretrain's loader alone (decode, random resized crop, flip, pixels to [-1, 1])
//       plus its MIM/MLM mask drawing; prints samples/s and samples/s per loader thread
#include <ATen/record_function.h>
#include <torch/torch.h>

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "eve/model/eve_model.h"
#include "eve/model/moe.h"
#include "eve/model/runtime.h"
#include "eve/train/distributed.h"
#include "eve/train/loader.h"
#include "eve/train/msm.h"
#include "eve/train/optim.h"
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
  return eve::model::retain_host_memory() ? "freed memory retained" : "system malloc";
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

Timing time_layer(MoE& moe, int64_t S, Dispatch d, int reps,
                  ExpertLayout layout = ExpertLayout::grouped) {
  torch::Tensor x = torch::randn({S, moe->wg->weight.size(1)}).requires_grad_(true);
  torch::Tensor modality = torch::randint(0, 2, {S}, torch::kLong);
  RoutingOptions opt;
  opt.dispatch = d;
  opt.layout = layout;
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
  // "capacity" is the fixed [E, C, D] layout that reads nothing from the device; cap/grp is
  // its time over the grouped one's (above 1: grouped is faster), which decides the CPU's
  // choice in ExpertLayout::by_device.
  std::printf("%8s %10s %10s %8s %10s %8s %14s %14s\n", "tokens", "sparse s", "capacity s",
              "cap/grp", "dense s", "ratio", "matmul GFLOP/s", "sparse/matmul");
  for (int64_t S : tokens) {
    // The matmul rate is measured just before and after the sparse layer and the higher one
    // kept, so a busy machine lowers the sparse layer's share rather than inflating it.
    double rate = matmul_gflops();
    Timing sp = time_layer(moe, S, Dispatch::sparse, reps);
    rate = std::max(rate, matmul_gflops());
    Timing cap = time_layer(moe, S, Dispatch::sparse, reps, ExpertLayout::capacity);
    // Expert GEMM work: forward 2 GEMMs of 2*n*D*F flops, backward twice that.
    double flops = 3.0 * 2.0 * 2.0 * double(sp.kept) * double(width) * double(inner);
    double frac = flops / sp.seconds / 1e9 / rate;
    std::printf("%8lld %10.3f %10.3f %7.2fx ", (long long)S, sp.seconds, cap.seconds,
                cap.seconds / sp.seconds);
    if (S <= dense_max) {
      Timing de = time_layer(moe, S, Dispatch::dense, 1);
      std::printf("%10.3f %7.2fx %14.1f %13.0f%%\n", de.seconds, de.seconds / sp.seconds, rate,
                  100 * frac);
    } else {
      std::printf("%10s %8s %14.1f %13.0f%%\n", "skipped", "-", rate, 100 * frac);
    }
    std::fflush(stdout);
  }
  return 0;
}

void print_counts(const char* what, const std::map<std::string, int64_t>& reads, int64_t total) {
  int64_t n = 0;
  std::string list;
  for (const auto& [name, k] : reads) {
    n += k;
    list += " " + name + "=" + std::to_string(k);
  }
  std::printf("%-9s %6lld ops, %3lld host reads:%s\n", what, (long long)total, (long long)n,
              list.c_str());
}

int syncs_bench(int argc, char** argv) {
  std::string preset = "eve-small", layout = "capacity";
  int64_t batch = 4, experts = 0;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--config") preset = v;
    else if (k == "--batch") batch = std::stoll(v);
    else if (k == "--layout") layout = v;
    else if (k == "--experts") experts = std::stoll(v);
    else {
      std::fprintf(stderr, "eve-model-bench: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  torch::manual_seed(0);
  ModelConfig c = load_config(preset);
  if (experts > 0) c.moe_param.num_experts = experts;
  EveModel m(c);
  m->set_expert_layout(layout == "grouped"    ? ExpertLayout::grouped
                       : layout == "by_device" ? ExpertLayout::by_device
                                               : ExpertLayout::capacity);
  m->set_want_load(false);  // a training step that does not log
  m->train();
  EncoderInput in;
  in.image = torch::randn({batch, 3, c.image_res, c.image_res});
  in.text_ids = torch::randint(5, c.vocab_size, {batch, c.max_text_len}, torch::kLong);
  in.text_mask = torch::ones_like(in.text_ids);
  in.text_mask.narrow(1, c.max_text_len / 2, c.max_text_len / 2).zero_();  // padded text
  std::printf("%s batch %lld, %lld experts, training step with padded text, %s layout\n",
              preset.c_str(), (long long)batch, (long long)c.moe_param.num_experts, layout.c_str());
  torch::Tensor loss;
  {
    OpCounter ops;
    EncoderOutput o = m->encode(Mode::vl, in);
    loss = o.hidden.mean() + o.aux;
    print_counts("forward", ops.host_reads(), ops.total());
  }
  OpCounter ops;
  loss.backward();
  print_counts("backward", ops.host_reads(), ops.total());
  return 0;
}

// Resident memory now (from /proc/self/statm) and the process's peak so far, in MiB.
double resident_mib() {
  std::ifstream f("/proc/self/statm");
  long pages = 0, resident = 0;
  f >> pages >> resident;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1 << 20);
}

double peak_resident_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // Linux reports KiB
}

int train_memory_bench(int argc, char** argv) {
  std::map<std::string, std::string> o{{"--config", "eve-base"}, {"--image-res", "384"}, {"--batch", "2"},
                                       {"--threads", "2"},        {"--reps", "2"},        {"--checkpoint", "0"}};
  for (int i = 2; i + 1 < argc; i += 2) {
    auto it = o.find(argv[i]);
    if (it == o.end()) {
      std::fprintf(stderr, "eve-model-bench: unknown option %s\n", argv[i]);
      return 2;
    }
    it->second = argv[i + 1];
  }
  const std::string preset = o["--config"];
  const int64_t batch = std::stoll(o["--batch"]), res = std::stoll(o["--image-res"]);
  const int threads = std::stoi(o["--threads"]), reps = std::stoi(o["--reps"]);
  const bool checkpointing = o["--checkpoint"] == "1";
  at::set_num_threads(threads);
  const char* memory = host_memory_setup();
  torch::manual_seed(0);
  ModelConfig c = load_config(preset);
  c.image_res = static_cast<int>(res);
  c.heads = {"vqa"};
  c.gradient_checkpointing = checkpointing;
  EveModel m(c);
  m->train();
  int64_t numel = 0;
  for (const auto& p : m->parameters()) numel += p.numel();
  const double weights_mib = 4.0 * static_cast<double>(numel) / (1 << 20);
  EncoderInput in;
  in.image = torch::randn({batch, 3, c.image_res, c.image_res});
  in.text_ids = torch::randint(5, c.vocab_size, {batch, c.max_text_len}, torch::kLong);
  torch::Tensor targets = torch::rand({batch, c.num_answers}).lt(0.002).to(torch::kFloat);
  const double before = resident_mib();
  double best = 1e9;
  for (int r = 0; r < reps; ++r) {
    m->zero_grad();
    double t0 = now();
    EncoderOutput o = m->encode(Mode::vl, in);
    torch::Tensor logits = m->vqa_logits(o.pooled);
    // The official VQA loss: BCE averaged over the batch and scaled by the answer count.
    torch::Tensor loss =
        torch::binary_cross_entropy_with_logits(logits, targets) * static_cast<double>(c.num_answers) +
        c.moe_lossweight * o.aux;
    loss.backward();
    best = std::min(best, now() - t0);
  }
  const double peak = peak_resident_mib();
  std::printf("%s %lld px batch %lld, %lld tokens/sample, %d threads, %s, checkpointing %s\n",
              preset.c_str(), (long long)res, (long long)batch,
              (long long)(c.num_patches() + 1 + c.max_text_len), threads, memory,
              checkpointing ? "on" : "off");
  std::printf("step %.3f s; peak resident %.0f MiB, before the first step %.0f MiB, weights %.0f MiB; "
              "peak - before - gradients %.0f MiB\n",
              best, peak, before, weights_mib, peak - before - weights_mib);
  return 0;
}


namespace {

// ---- optim: operations and host syncs per optimiser step ----

struct OpTally {
  int64_t ops = 0, syncs = 0;
};
OpTally* tally = nullptr;  // counting while set
thread_local int op_depth = 0;

// Operations that make the host wait for the device: scalar reads, data-dependent shapes,
// and copies from a device to the host.
bool host_sync(const at::RecordFunction& fn) {
  const std::string name = fn.name();
  for (const char* s : {"aten::_local_scalar_dense", "aten::item", "aten::is_nonzero", "aten::nonzero",
                        "aten::masked_select"})
    if (name == s) return true;
  const auto in = fn.inputs();
  if (name == "aten::copy_" && in.size() >= 2 && in[0].isTensor() && in[1].isTensor())
    return in[0].toTensor().is_cpu() && !in[1].toTensor().is_cpu();
  if (name == "aten::_to_copy" && !in.empty() && in[0].isTensor() && !in[0].toTensor().is_cpu())
    for (const c10::IValue& v : in)
      if (v.isDevice() && v.toDevice().is_cpu()) return true;
  return false;
}

std::unique_ptr<at::ObserverContext> count_start(const at::RecordFunction& fn) {
  if (tally) {
    if (op_depth == 0) ++tally->ops;
    if (host_sync(fn)) ++tally->syncs;
  }
  ++op_depth;
  return nullptr;
}

void count_end(const at::RecordFunction&, at::ObserverContext*) { --op_depth; }

// What the trainers ran before the flat buffers: a float64 norm read per tensor, then AdamW
// one tensor at a time.
struct PerTensorBaseline {
  std::vector<torch::Tensor> params, m, v;
  std::vector<bool> decay;
  int64_t steps = 0;
  explicit PerTensorBaseline(const std::vector<std::pair<std::string, torch::Tensor>>& named) {
    for (const auto& [name, p] : named) {
      params.push_back(p);
      m.push_back(torch::zeros_like(p));
      v.push_back(torch::zeros_like(p));
      decay.push_back(!eve::train::exempt_from_decay(name, p));
    }
  }
  double clip_and_step(double lr, double max_norm) {
    torch::NoGradGuard ng;
    double sq = 0;
    for (const auto& p : params) sq += p.grad().to(torch::kFloat64).pow(2).sum().item<double>();
    const double norm = std::sqrt(sq);
    if (norm > max_norm)
      for (const auto& p : params) p.grad().mul_(max_norm / (norm + 1e-6));
    ++steps;
    const double bc1 = 1 - std::pow(0.9, double(steps)), bc2 = 1 - std::pow(0.98, double(steps));
    for (size_t i = 0; i < params.size(); ++i) {
      const torch::Tensor& g = params[i].grad();
      if (decay[i]) params[i].mul_(1 - lr * 0.01);
      m[i].mul_(0.9).add_(g, 0.1);
      v[i].mul_(0.98).addcmul_(g, g, 0.02);
      params[i].addcdiv_(m[i], (v[i].sqrt() / std::sqrt(bc2)).add_(1e-8), -lr / bc1);
    }
    return norm;
  }
};

int optim_bench(int argc, char** argv) {
  std::string preset = "eve-small";
  int threads = 2, steps = 5;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--config") preset = v;
    else if (k == "--threads") threads = std::stoi(v);
    else if (k == "--steps") steps = std::stoi(v);
    else {
      std::fprintf(stderr, "eve-model-bench: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  at::set_num_threads(threads);
  torch::manual_seed(0);
  EveModel m(load_config(preset));
  std::vector<std::pair<std::string, torch::Tensor>> named;
  std::vector<torch::Tensor> params, grads;
  int64_t numel = 0;
  for (auto& kv : m->named_parameters()) {
    named.emplace_back(kv.key(), kv.value());
    params.push_back(kv.value());
    grads.push_back(torch::randn_like(kv.value()) * 1e-3);
    numel += kv.value().numel();
  }
  // Every step starts from the same gradients, written outside the measured part.
  auto fill_gradients = [&] {
    torch::NoGradGuard ng;
    for (size_t i = 0; i < params.size(); ++i) {
      if (!params[i].grad().defined()) params[i].mutable_grad() = torch::empty_like(params[i]);
      params[i].mutable_grad().copy_(grads[i]);
    }
  };
  auto handle = at::addGlobalCallback(
      at::RecordFunctionCallback(count_start, count_end).needsInputs(true).scopes({at::RecordScope::FUNCTION}));
  auto measure = [&](const std::function<void()>& one_step) {
    OpTally t;
    double best = 1e9;
    for (int s = 0; s < steps + 1; ++s) {  // the first step builds buffers and warms up
      fill_gradients();
      OpTally here;
      tally = &here;
      const double t0 = now();
      one_step();
      const double dt = now() - t0;
      tally = nullptr;
      if (s) best = std::min(best, dt), t = here;
    }
    return std::make_pair(t, best);
  };
  PerTensorBaseline before(named);
  auto [old_ops, old_s] = measure([&] { before.clip_and_step(1e-4, 1.0); });
  eve::train::AdamW opt(named, {0.9, 0.98, 1e-8, 0.01});
  eve::train::ProcessGroup alone(eve::train::DistEnv{}, 5);
  auto [new_ops, new_s] = measure([&] {
    eve::train::sync_gradients(opt, alone, 1.0);
    opt.step(1e-4);
  });
  at::removeCallback(handle);
  std::printf("%s: %zu parameter tensors, %.1f M values, %d threads; per step of clip + AdamW:\n", preset.c_str(),
              params.size(), numel / 1e6, threads);
  std::printf("%-12s %10s %12s %10s\n", "", "aten ops", "host syncs", "seconds");
  std::printf("%-12s %10lld %12lld %10.4f\n", "per-tensor", (long long)old_ops.ops, (long long)old_ops.syncs, old_s);
  std::printf("%-12s %10lld %12lld %10.4f\n", "flat", (long long)new_ops.ops, (long long)new_ops.syncs, new_s);
  std::printf("flat buffers: %zu; per-tensor/flat time ratio %.2fx\n", opt.flat_groups(), old_s / new_s);
  return 0;
}

}  // namespace


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
  if (cmd == "moe") return moe_bench(argc, argv);
  if (cmd == "model") return model_bench(argc, argv);
  if (cmd == "syncs") return syncs_bench(argc, argv);
  if (cmd == "train-memory") return train_memory_bench(argc, argv);
  if (cmd == "optim") return optim_bench(argc, argv);
  if (cmd == "loader") return loader_bench(argc, argv);
  std::fprintf(stderr, "usage: eve-model-bench moe|model|syncs|train-memory|optim|loader [options]\n");
  return 2;
}
