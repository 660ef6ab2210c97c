#include "eve/model/runtime.h"

#include <torch/torch.h>

#include "eve/core/error.h"
#include "eve/core/log.h"
#include "eve/core/threads.h"

namespace eve::nn {

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

std::string init_runtime(const cli::CommonOptions& common) {
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
  log::debug("device {}, {} threads, seed {}", device, threads, common.seed);
  return device;
}

}  // namespace eve::nn
