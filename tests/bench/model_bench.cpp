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
#include <torch/torch.h>

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "eve/model/eve_model.h"
#include "eve/model/moe.h"
#include "eve/model/runtime.h"

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

int main(int argc, char** argv) {
  std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "moe") return moe_bench(argc, argv);
  if (cmd == "model") return model_bench(argc, argv);
  if (cmd == "syncs") return syncs_bench(argc, argv);
  if (cmd == "train-memory") return train_memory_bench(argc, argv);
  std::fprintf(stderr, "usage: eve-model-bench moe|model|syncs|train-memory [options]\n");
  return 2;
}
