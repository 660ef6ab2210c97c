// Process-wide set-up shared by the torch programs. Torch-free header: mains include it.
#pragma once

#include <string>

#include "eve/core/cli.h"

namespace eve::nn {

// "libtorch 1.13.0, CUDA no" for --version.
std::string build_info();
// Applies --threads (at::set_num_threads and our pools), --seed (torch's generator) and
// validates --device; returns the resolved device name ("cpu", "cuda:0").
std::string init_runtime(const cli::CommonOptions& common);
// Whether this build and machine can run CUDA.
bool cuda_available();

}  // namespace eve::nn
