#include "eve/model/runtime.h"

#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <cstdlib>
#include <cstring>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "eve/core/error.h"
#include "eve/core/log.h"
#include "eve/core/threads.h"

// libtorch 2.4 replaced the per-device autocast functions (set_enabled for CUDA,
// set_cpu_enabled, set_autocast_gpu_dtype, ...) by ones taking the device type.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define EVE_AUTOCAST_BY_DEVICE_TYPE 1
#else
#define EVE_AUTOCAST_BY_DEVICE_TYPE 0
#endif

namespace eve::model {

namespace {

Precision g_precision = Precision::fp32;
bool g_deterministic_routing = false;

bool autocast_enabled(bool cuda) {
#if EVE_AUTOCAST_BY_DEVICE_TYPE
  return at::autocast::is_autocast_enabled(cuda ? at::kCUDA : at::kCPU);
#else
  return cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

void set_autocast_enabled(bool cuda, bool on) {
#if EVE_AUTOCAST_BY_DEVICE_TYPE
  at::autocast::set_autocast_enabled(cuda ? at::kCUDA : at::kCPU, on);
#else
  if (cuda) at::autocast::set_enabled(on);
  else at::autocast::set_cpu_enabled(on);
#endif
}

at::ScalarType autocast_dtype(bool cuda) {
#if EVE_AUTOCAST_BY_DEVICE_TYPE
  return at::autocast::get_autocast_dtype(cuda ? at::kCUDA : at::kCPU);
#else
  return cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
#endif
}

void set_autocast_dtype(bool cuda, at::ScalarType t) {
#if EVE_AUTOCAST_BY_DEVICE_TYPE
  at::autocast::set_autocast_dtype(cuda ? at::kCUDA : at::kCPU, t);
#else
  if (cuda) at::autocast::set_autocast_gpu_dtype(t);
  else at::autocast::set_autocast_cpu_dtype(t);
#endif
}

}  // namespace

std::string build_info() {
  return fmt::format("libtorch {}.{}.{}, CUDA {}", TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR,
                     TORCH_VERSION_PATCH,
#ifdef EVE_CUDA
                     "yes"
#else
                     "no"
#endif
  );
}

bool cuda_available() { return torch::cuda::is_available(); }

Precision parse_precision(const std::string& text) {
  if (text == "fp32") return Precision::fp32;
  if (text == "bf16") return Precision::bf16;
  throw UsageError("--precision " + text + ": expected fp32 or bf16");
}

const char* precision_name(Precision p) { return p == Precision::bf16 ? "bf16" : "fp32"; }

Precision run_precision() { return g_precision; }
bool deterministic_routing_requested() { return g_deterministic_routing; }

bool tf32_wanted(const std::string& device, Precision precision, bool no_tf32) {
  return device.rfind("cuda", 0) == 0 && precision == Precision::fp32 && !no_tf32;
}

bool tf32_enabled() {
  return at::globalContext().allowTF32CuBLAS() && at::globalContext().allowTF32CuDNN();
}

bool retain_host_memory() {
#if defined(__GLIBC__)
  const char* policy = std::getenv("EVE_MALLOC");
  if (policy && std::strcmp(policy, "system") == 0) return false;
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (tunables && std::strstr(tunables, "glibc.malloc.")) return false;
  return mallopt(M_MMAP_THRESHOLD, 1 << 30) == 1 && mallopt(M_TRIM_THRESHOLD, -1) == 1;
#else
  return false;
#endif
}

std::string init_runtime(const cli::CommonOptions& common) {
  const Precision precision = parse_precision(common.precision);
  retain_host_memory();
  int threads = resolve_threads(common.threads);
  at::set_num_threads(threads);
  torch::manual_seed(common.seed);
  const std::string& d = common.device;
  std::string device;
  if (d == "auto") {
    device = cuda_available() ? "cuda:0" : "cpu";
  } else if (d == "cpu") {
    device = "cpu";
  } else if (d.rfind("cuda", 0) == 0) {
    if (!cuda_available())
      throw UsageError("--device " + d + ": CUDA is not available",
                       {}, {}, "this libtorch was built without CUDA or no GPU is visible");
    try {
      torch::Device dev(d);
      if (dev.index() >= static_cast<int>(torch::cuda::device_count()))
        throw UsageError("--device " + d + ": no such GPU");
      device = dev.str();
    } catch (const c10::Error&) {
      throw UsageError("--device " + d + ": not a device name (auto, cpu, cuda, cuda:N)");
    }
    if (device == "cuda") device = "cuda:0";
  } else {
    throw UsageError("--device " + d + ": not a device name (auto, cpu, cuda, cuda:N)");
  }
  g_precision = precision;
  g_deterministic_routing = common.deterministic_routing;
  // Both switches every run: libtorch's own defaults differ (cuDNN on, cuBLAS off).
  const bool tf32 = tf32_wanted(device, precision, common.no_tf32);
  at::globalContext().setAllowTF32CuBLAS(tf32);
  at::globalContext().setAllowTF32CuDNN(tf32);
  log::debug("device {}, {} threads, seed {}, precision {}{}", device, threads, common.seed,
             precision_name(precision), tf32 ? " (TF32 matrix products)" : "");
  // Once per run: by the only process, or by rank 0 of distributed workers.
  const char* rank = std::getenv("RANK");
  if (precision == Precision::bf16 && (!rank || !*rank || std::strcmp(rank, "0") == 0))
    log::info("precision bf16: forward passes under bfloat16 autocast; weights, optimiser state, "
              "attention softmax and losses in float32");
  return device;
}

Autocast::Autocast(Precision precision, const std::string& device) {
  if (precision == Precision::fp32) return;
  active_ = true;
  cuda_ = device.rfind("cuda", 0) == 0;
  was_enabled_ = autocast_enabled(cuda_);
  was_dtype_ = static_cast<int>(autocast_dtype(cuda_));
  set_autocast_dtype(cuda_, at::kBFloat16);
  set_autocast_enabled(cuda_, true);
  at::autocast::increment_nesting();
}

Autocast::~Autocast() {
  if (!active_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  set_autocast_enabled(cuda_, was_enabled_);
  set_autocast_dtype(cuda_, static_cast<at::ScalarType>(was_dtype_));
}

namespace {
void apply_autocast(const AutocastState& s) {
  set_autocast_dtype(false, static_cast<at::ScalarType>(s.cpu_dtype));
  set_autocast_enabled(false, s.cpu);
  set_autocast_dtype(true, static_cast<at::ScalarType>(s.cuda_dtype));
  set_autocast_enabled(true, s.cuda);
}
}  // namespace

AutocastState autocast_state() {
  AutocastState s;
  s.cpu = autocast_enabled(false);
  s.cuda = autocast_enabled(true);
  s.cpu_dtype = static_cast<int>(autocast_dtype(false));
  s.cuda_dtype = static_cast<int>(autocast_dtype(true));
  return s;
}

AutocastAs::AutocastAs(const AutocastState& state) : previous_(autocast_state()) {
  apply_autocast(state);
  at::autocast::increment_nesting();
}

AutocastAs::~AutocastAs() {
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  apply_autocast(previous_);
}

NoAutocast::NoAutocast() : cpu_(autocast_enabled(false)), cuda_(autocast_enabled(true)) {
  if (cpu_) set_autocast_enabled(false, false);
  if (cuda_) set_autocast_enabled(true, false);
}

NoAutocast::~NoAutocast() {
  if (cpu_) set_autocast_enabled(false, true);
  if (cuda_) set_autocast_enabled(true, true);
}

}  // namespace eve::model
