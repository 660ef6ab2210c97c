// Process-wide set-up shared by the torch programs. Torch-free header: mains include it.
#pragma once

#include <string>

#include "eve/core/cli.h"

namespace eve::model {

// "libtorch 1.13.0, CUDA no" for --version.
std::string build_info();
// Applies --threads (at::set_num_threads and our pools), --seed (torch's generator),
// validates --device and --precision and records the precision as the run's (see
// run_precision); returns the resolved device name ("cpu", "cuda:0").
std::string init_runtime(const cli::CommonOptions& common);
// --deterministic-routing as init_runtime recorded it (false before it runs): every model
// built afterwards in this process gets `deterministic_routing: true` (see config.h).
bool deterministic_routing_requested();
// Whether this build and machine can run CUDA.
bool cuda_available();

// Keeps freed host memory in the process for reuse (init_runtime calls it). glibc's malloc
// maps every block of 32 MiB or more fresh from the kernel and unmaps it on free, so each
// training step pays a page fault and a page clear for every 4 KiB of its large activations
// (an expert FFN's [tokens, inner] tensors are hundreds of MB): measured, a quarter of a
// MoE layer's time. After this call blocks up to 1 GiB come from the heap and freed heap
// memory is not given back: the peak resident size is the same, it is only kept until exit.
// Returns false and changes nothing when the C library is not glibc, when GLIBC_TUNABLES
// already sets a glibc.malloc tunable, or when EVE_MALLOC=system.
bool retain_host_memory();

// --precision: fp32 runs everything in float32; bf16 runs the model's forward passes under
// torch's autocast with bfloat16 (matrix products and convolutions in bf16; weights,
// gradients, optimiser state, checkpoints, attention scores/softmax and losses stay float32).
enum class Precision { fp32, bf16 };
// "fp32" or "bf16"; anything else throws eve::UsageError "--precision X: expected fp32 or bf16".
Precision parse_precision(const std::string& text);
const char* precision_name(Precision p);
// The precision init_runtime recorded (fp32 before it runs, e.g. in unit tests).
Precision run_precision();

// Whether a run on `device` ("cpu", "cuda:N") at `precision` computes float32 matrix products
// and convolutions with TF32 tensor cores: on CUDA with fp32 unless --no-tf32. bf16 runs keep
// TF32 off, so what they compute in float32 on purpose (attention scores, ITC logits, losses)
// stays full float32.
bool tf32_wanted(const std::string& device, Precision precision, bool no_tf32);
// TF32 as libtorch has it now (cuBLAS and cuDNN both; init_runtime sets them from
// tf32_wanted).
bool tf32_enabled();

// Scope of a forward pass under the given precision on `device` ("cpu", "cuda", "cuda:N"):
// with bf16, enables autocast (bf16) for that device type on this thread, restoring the
// previous state at the end; fp32 changes nothing. Autocast keeps bf16 copies of the weights
// while enabled: leaving the outermost scope drops them, so open one scope per step (before
// the optimiser changes the weights), run backward outside it.
class Autocast {
 public:
  Autocast(Precision precision, const std::string& device);
  ~Autocast();
  Autocast(const Autocast&) = delete;
  Autocast& operator=(const Autocast&) = delete;

 private:
  bool active_ = false, cuda_ = false, was_enabled_ = false;
  int was_dtype_ = 0;
};

// The autocast settings of this thread (on or off and the dtype, for the CPU and for CUDA).
// Autocast is per thread and autograd may run backward on another thread, so work done in
// backward on behalf of a forward pass (a checkpointed layer recomputing its activations,
// model/checkpointing.h) records them in forward and applies them with AutocastAs.
struct AutocastState {
  bool cpu = false, cuda = false;
  int cpu_dtype = 0, cuda_dtype = 0;
};
AutocastState autocast_state();

// Scope that applies recorded autocast settings on this thread, restoring the previous ones at
// the end. Like Autocast, the outermost scope drops the cast weights it kept.
class AutocastAs {
 public:
  explicit AutocastAs(const AutocastState& state);
  ~AutocastAs();
  AutocastAs(const AutocastAs&) = delete;
  AutocastAs& operator=(const AutocastAs&) = delete;

 private:
  AutocastState previous_;
};

// Scope that runs in full precision inside an Autocast scope (autocast off for every device
// type on this thread, restored at the end): attention scores and softmax, ITC logits.
class NoAutocast {
 public:
  NoAutocast();
  ~NoAutocast();
  NoAutocast(const NoAutocast&) = delete;
  NoAutocast& operator=(const NoAutocast&) = delete;

 private:
  bool cpu_ = false, cuda_ = false;
};

}  // namespace eve::model
