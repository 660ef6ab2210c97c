// Data-parallel training over c10d process groups (docs/architecture.md, "Randomness,
// resuming and data parallelism"): the torchrun environment contract, a Gloo group on CPU,
// an NCCL group on GPUs (when libtorch has CUDA), parameter broadcast from rank 0 and
// bucketed gradient averaging (libtorch has no C++ DistributedDataParallel), plus a local
// launcher that forks workers.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace eve::train {

struct DistEnv {
  int rank = 0, world = 1, local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
};

// Reads RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT (torchrun), falling back to
// SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID; no variables = one process. Malformed values
// throw eve::UsageError naming the variable.
DistEnv dist_env_from_environment();

// Forks `n` local workers (call before any torch work) with RANK/LOCAL_RANK/WORLD_SIZE/
// MASTER_ADDR/MASTER_PORT set, then returns in each worker with *is_worker = true. The
// parent waits: when a worker fails it stops the others (SIGTERM, then SIGKILL after
// `timeout_s`), forwards SIGINT/SIGTERM to the workers, and returns the first non-zero
// exit code (0 when all succeed).
int launch_local_workers(int n, int timeout_s, bool* is_worker);

class ProcessGroup {
 public:
  // One process: a no-op group (unless `connect_alone`, which tests use to run every
  // collective through a real group of one). Otherwise connects through a TCP store at
  // master_addr:master_port; every collective waits at most timeout_s seconds. The backend
  // follows `device`, where this rank's tensors live: NCCL for a CUDA device, Gloo for the CPU.
  ProcessGroup(const DistEnv& env, int timeout_s, torch::Device device = torch::kCPU,
               bool connect_alone = false);
  ~ProcessGroup();
  int rank() const { return env_.rank; }
  int world() const { return env_.world; }
  bool active() const;
  // "gloo", "nccl", or "none" for a one-process no-op group.
  const char* backend() const;
  // Copies rank 0's values into every tensor (in place).
  void broadcast(std::vector<torch::Tensor>& tensors);
  // Replaces every tensor by its mean over ranks, in flattened buckets of ~bucket_bytes; a
  // contiguous tensor that fills a bucket alone (a flat gradient buffer) is reduced in place.
  void average(std::vector<torch::Tensor>& tensors, int64_t bucket_bytes = 25 << 20);
  // Concatenates every rank's `local` ([n,...], the same shape on every rank) along dim 0
  // in rank order. Backward sums the gathered gradient over ranks and keeps this rank's rows,
  // so that after gradient averaging a loss over the gathered rows trains exactly as one
  // process with the global batch would (every rank must run the backward pass).
  torch::Tensor gather_rows(const torch::Tensor& local);
  // Rows of the gathered batch (rank order: global row g is row g % n of rank g / n, every
  // rank holding `local` [n,...] of the same shape) fetched for each rank without gathering
  // everything. `wanted` [world, k] int64 (on the CPU): row r lists the global rows rank r
  // asks for; it must be the same tensor on every rank (e.g. drawn with one seed everywhere),
  // so that every rank knows what to send without a request round. Returns this rank's k rows
  // in the order of wanted[rank], on local's device; no gradient. One all-to-all: a rank
  // receives at most k rows and sends each row once per time it is asked for, whatever the
  // world size (an all-gather would move (world - 1) * n rows to every rank). One process:
  // local.index_select(0, wanted[0]).
  torch::Tensor fetch_rows(const torch::Tensor& local, const torch::Tensor& wanted);
  // Sums small values over ranks (moved through the group's device and back).
  std::vector<double> sum(const std::vector<double>& values);
  void barrier();

 private:
  struct Impl;
  DistEnv env_;
  torch::Device device_;
  std::unique_ptr<Impl> impl_;
};

// Gives parameters without a gradient a zero one (so that every rank reduces the same
// tensors), averages the gradients over ranks, one collective per flat buffer that AdamW
// laid them in (gradient_spans), and clips their global norm (0 = no clipping). Returns the
// norm before clipping as clip_grad_norm does: a 0-d float32 tensor on the gradients'
// device; with one process nothing is read back to the host.
torch::Tensor sync_gradients(const std::vector<torch::Tensor>& params, ProcessGroup& pg, double clip);

class AdamW;
// The same over the optimiser's parameters, through its flat buffers (built first when new
// gradients appeared): the trainers' form, whose norm is summed over the same layout on every
// step, so that resumed runs stay bit-identical to uninterrupted ones.
torch::Tensor sync_gradients(AdamW& opt, ProcessGroup& pg, double clip);

}  // namespace eve::train
