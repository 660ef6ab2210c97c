#include "eve/train/distributed.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/version.h>
#ifdef EVE_CUDA
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "eve/core/error.h"
#include "eve/core/log.h"
#include "eve/core/signals.h"
#include "eve/train/optim.h"

namespace eve::train {

namespace {

// libtorch 2.0 split c10d::ProcessGroup into a front end and per-device backends: there the
// Gloo and NCCL classes derive from c10d::Backend, before it from c10d::ProcessGroup. Both
// bases offer the same collectives, which are all eve calls.
#if TORCH_VERSION_MAJOR >= 2
using Collectives = c10d::Backend;
#else
using Collectives = c10d::ProcessGroup;
#endif

bool env_int(const char* name, int& out) {
  const char* v = std::getenv(name);
  if (!v || !*v) return false;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (*end != '\0' || x < 0 || x > 1 << 20)
    throw UsageError(std::string("environment variable ") + name + "=" + v + " is not a non-negative integer");
  out = static_cast<int>(x);
  return true;
}

}  // namespace

DistEnv dist_env_from_environment() {
  DistEnv e;
  if (env_int("RANK", e.rank)) {
    if (!env_int("WORLD_SIZE", e.world)) throw UsageError("RANK is set but WORLD_SIZE is not");
    if (!env_int("LOCAL_RANK", e.local_rank)) e.local_rank = e.rank;
  } else if (env_int("SLURM_PROCID", e.rank)) {
    if (!env_int("SLURM_NTASKS", e.world)) e.world = 1;
    if (!env_int("SLURM_LOCALID", e.local_rank)) e.local_rank = e.rank;
  }
  if (e.world < 1 || e.rank >= e.world)
    throw UsageError("rank " + std::to_string(e.rank) + " is outside the world size " + std::to_string(e.world));
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) e.master_addr = a;
  env_int("MASTER_PORT", e.master_port);
  return e;
}

int launch_local_workers(int n, int timeout_s, bool* is_worker) {
  *is_worker = false;
  const char* port = std::getenv("MASTER_PORT");
  const std::string master_port = port && *port ? port : "29500";
  std::vector<pid_t> pids;
  std::fflush(stdout);
  std::fflush(stderr);
  for (int r = 0; r < n; ++r) {
    const pid_t pid = fork();
    if (pid < 0) throw Error("fork failed while starting local workers");
    if (pid == 0) {
      setenv("RANK", std::to_string(r).c_str(), 1);
      setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      setenv("WORLD_SIZE", std::to_string(n).c_str(), 1);
      setenv("LOCAL_WORLD_SIZE", std::to_string(n).c_str(), 1);
      if (!std::getenv("MASTER_ADDR")) setenv("MASTER_ADDR", "127.0.0.1", 1);
      setenv("MASTER_PORT", master_port.c_str(), 1);
      *is_worker = true;
      return 0;
    }
    pids.push_back(pid);
  }
  int first_failure = 0;
  bool forwarded = false;
  std::vector<bool> done(pids.size(), false);
  size_t remaining = pids.size();
  auto kill_deadline = std::chrono::steady_clock::time_point::max();
  while (remaining > 0) {
    for (size_t i = 0; i < pids.size(); ++i) {
      if (done[i]) continue;
      int status = 0;
      const pid_t got = waitpid(pids[i], &status, WNOHANG);
      if (got != pids[i]) continue;
      done[i] = true;
      --remaining;
      int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      if (code != 0 && first_failure == 0) {
        first_failure = code;
        log::error("worker {} exited with status {}; stopping the others", i, code);
        for (size_t j = 0; j < pids.size(); ++j)
          if (!done[j]) kill(pids[j], SIGTERM);
        kill_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
      }
    }
    if (signals::stop_requested() && !forwarded) {
      forwarded = true;
      for (size_t j = 0; j < pids.size(); ++j)
        if (!done[j]) kill(pids[j], signals::stop_signal());
    }
    if (std::chrono::steady_clock::now() > kill_deadline) {
      for (size_t j = 0; j < pids.size(); ++j)
        if (!done[j]) kill(pids[j], SIGKILL);
      kill_deadline = std::chrono::steady_clock::time_point::max();
    }
    if (remaining > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return first_failure;
}

struct ProcessGroup::Impl {
  c10::intrusive_ptr<Collectives> pg;
  const char* backend = "none";
};

ProcessGroup::ProcessGroup(const DistEnv& env, int timeout_s, torch::Device device, bool connect_alone)
    : env_(env), device_(device), impl_(std::make_unique<Impl>()) {
  if (env.world <= 1 && !connect_alone) return;
  const auto timeout = std::chrono::seconds(timeout_s);
  const bool cuda = device.is_cuda();
#ifndef EVE_CUDA
  if (cuda)
    throw UsageError("a process group on " + device.str() + " needs NCCL, and this build of eve has no CUDA");
#endif
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(env.master_port);
    so.isServer = env.rank == 0;
    so.numWorkers = env.world;
    so.timeout = timeout;
    auto store = c10::make_intrusive<c10d::PrefixStore>("eve", c10::make_intrusive<c10d::TCPStore>(env.master_addr, so));
    if (cuda) {
#ifdef EVE_CUDA
      // NCCL takes the GPU from the tensors of each call (the barrier names it).
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = timeout;
      impl_->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, env.rank, env.world, opts);
      impl_->backend = "nccl";
#endif
    } else {
      auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(env.master_addr));
      impl_->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, env.rank, env.world, opts);
      impl_->backend = "gloo";
    }
  } catch (const UsageError&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(std::string("cannot join the process group at ") + env.master_addr + ":" +
                    std::to_string(env.master_port) + " as rank " + std::to_string(env.rank) + " of " +
                    std::to_string(env.world) + ": " + e.what(),
                {}, {}, "check MASTER_ADDR/MASTER_PORT and that every rank started");
  }
}

bool ProcessGroup::active() const { return static_cast<bool>(impl_->pg); }

const char* ProcessGroup::backend() const { return impl_->backend; }

ProcessGroup::~ProcessGroup() = default;

void ProcessGroup::broadcast(std::vector<torch::Tensor>& tensors) {
  if (!active()) return;
  torch::NoGradGuard guard;
  for (auto& t : tensors) {
    std::vector<at::Tensor> v{t.detach()};
    impl_->pg->broadcast(v)->wait();
  }
}

void ProcessGroup::average(std::vector<torch::Tensor>& tensors, int64_t bucket_bytes) {
  if (!active()) return;
  torch::NoGradGuard guard;
  size_t i = 0;
  while (i < tensors.size()) {
    size_t j = i;
    int64_t bytes = 0;
    std::vector<torch::Tensor> flat;
    while (j < tensors.size() && (j == i || bytes + static_cast<int64_t>(tensors[j].nbytes()) <= bucket_bytes)) {
      bytes += static_cast<int64_t>(tensors[j].nbytes());
      flat.push_back(tensors[j].reshape({-1}));
      ++j;
    }
    if (j == i + 1 && tensors[i].is_contiguous()) {
      std::vector<at::Tensor> buf{tensors[i]};
      impl_->pg->allreduce(buf)->wait();
      tensors[i].div_(static_cast<double>(env_.world));
      i = j;
      continue;
    }
    std::vector<at::Tensor> buf{torch::cat(flat)};
    impl_->pg->allreduce(buf)->wait();
    buf[0].div_(static_cast<double>(env_.world));
    int64_t off = 0;
    for (size_t k = i; k < j; ++k) {
      const int64_t n = tensors[k].numel();
      tensors[k].copy_(buf[0].narrow(0, off, n).view(tensors[k].sizes()));
      off += n;
    }
    i = j;
  }
}

namespace {

torch::Tensor all_gather_rows(Collectives* pg, const torch::Tensor& local, int64_t world) {
  std::vector<std::vector<at::Tensor>> out(1);
  for (int64_t r = 0; r < world; ++r) out[0].push_back(torch::empty_like(local));
  std::vector<at::Tensor> in{local.contiguous()};
  pg->allgather(out, in)->wait();
  return torch::cat(out[0], 0);
}

// All-gather whose backward sums the gradient of the gathered tensor over ranks and returns
// this rank's rows: with gradients averaged over ranks afterwards, that is exactly the
// gradient of the global-batch loss (the official code keeps only the local slice of each
// rank's own gradient, which drops every cross-rank term of the contrastive loss).
struct GatherRows : public torch::autograd::Function<GatherRows> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& local, int64_t group,
                               int64_t rank, int64_t world) {
    auto* pg = reinterpret_cast<Collectives*>(group);
    ctx->saved_data["group"] = group;
    ctx->saved_data["rank"] = rank;
    ctx->saved_data["rows"] = local.size(0);
    return all_gather_rows(pg, local, world);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto* pg = reinterpret_cast<Collectives*>(ctx->saved_data["group"].toInt());
    const int64_t rank = ctx->saved_data["rank"].toInt(), rows = ctx->saved_data["rows"].toInt();
    std::vector<at::Tensor> g{grads[0].contiguous().clone()};
    pg->allreduce(g)->wait();
    return {g[0].narrow(0, rank * rows, rows), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor ProcessGroup::gather_rows(const torch::Tensor& local) {
  if (!active()) return local;
  if (local.requires_grad())
    return GatherRows::apply(local, reinterpret_cast<int64_t>(impl_->pg.get()), int64_t{env_.rank},
                             int64_t{env_.world});
  torch::NoGradGuard guard;
  return all_gather_rows(impl_->pg.get(), local, env_.world);
}

torch::Tensor ProcessGroup::fetch_rows(const torch::Tensor& local, const torch::Tensor& wanted) {
  const int64_t n = local.size(0), world = env_.world, rank = env_.rank;
  if (wanted.dim() != 2 || wanted.size(0) != world || wanted.scalar_type() != torch::kInt64)
    throw Error("fetch_rows: wanted must be an int64 [world, k] tensor, one row per rank");
  torch::NoGradGuard guard;
  torch::Tensor want = wanted.to(torch::kCPU).contiguous();
  if (want.numel() > 0 && (want.min().item<int64_t>() < 0 || want.max().item<int64_t>() >= n * world))
    throw Error("fetch_rows: a wanted row is outside the " + std::to_string(n * world) + " gathered rows");
  const int64_t k = want.size(1);
  auto w = want.accessor<int64_t, 2>();
  if (!active()) return local.index_select(0, want[0].to(local.device()));
  // What this rank sends: for every destination in rank order, its rows that it asked for.
  std::vector<int64_t> send_rows, send_counts(static_cast<size_t>(world), 0);
  for (int64_t d = 0; d < world; ++d)
    for (int64_t j = 0; j < k; ++j)
      if (w[d][j] / n == rank) {
        send_rows.push_back(w[d][j] % n);
        ++send_counts[static_cast<size_t>(d)];
      }
  // What it receives: from every source in rank order, the asked-for rows in asking order;
  // `slot` maps the received rows back to their position in wanted[rank].
  std::vector<int64_t> slot, recv_counts(static_cast<size_t>(world), 0);
  for (int64_t s = 0; s < world; ++s)
    for (int64_t j = 0; j < k; ++j)
      if (w[rank][j] / n == s) {
        slot.push_back(j);
        ++recv_counts[static_cast<size_t>(s)];
      }
  auto row_shape = local.sizes().vec();
  torch::Tensor input = local.index_select(0, torch::tensor(send_rows, torch::kInt64).to(local.device())).contiguous();
  row_shape[0] = k;
  torch::Tensor received = torch::empty(row_shape, local.options());
  impl_->pg->alltoall_base(received, input, recv_counts, send_counts)->wait();
  torch::Tensor out = torch::empty_like(received);
  out.index_copy_(0, torch::tensor(slot, torch::kInt64).to(local.device()), received);
  return out;
}

std::vector<double> ProcessGroup::sum(const std::vector<double>& values) {
  if (!active()) return values;
  std::vector<at::Tensor> buf{torch::tensor(values, torch::kFloat64).to(device_)};
  impl_->pg->allreduce(buf)->wait();
  const torch::Tensor host = buf[0].to(torch::kCPU);
  std::vector<double> out(values.size());
  for (size_t k = 0; k < values.size(); ++k) out[k] = host[static_cast<int64_t>(k)].item<double>();
  return out;
}

void ProcessGroup::barrier() {
  if (!active()) return;
  c10d::BarrierOptions opts;
  if (device_.is_cuda()) opts.device_ids = {device_.has_index() ? device_.index() : 0};
  impl_->pg->barrier(opts)->wait();
}

namespace {

void give_zero_gradients(const std::vector<torch::Tensor>& params) {
  torch::NoGradGuard guard;
  for (const auto& p : params)
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
}

}  // namespace

torch::Tensor sync_gradients(const std::vector<torch::Tensor>& params, ProcessGroup& pg, double clip) {
  give_zero_gradients(params);
  if (pg.active()) {
    std::vector<torch::Tensor> spans = gradient_spans(params);
    pg.average(spans);
  }
  return clip_grad_norm(params, clip);
}

torch::Tensor sync_gradients(AdamW& opt, ProcessGroup& pg, double clip) {
  std::vector<torch::Tensor> params;
  for (const auto& kv : opt.params()) params.push_back(kv.second);
  give_zero_gradients(params);
  if (pg.active()) {
    std::vector<torch::Tensor> flat = opt.flat_gradients();
    pg.average(flat);
  }
  return opt.clip_grad_norm(clip);
}

}  // namespace eve::train
