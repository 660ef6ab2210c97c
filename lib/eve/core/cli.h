// What every program's main shares: the common option group, parsing, and the mapping of
// errors to one stderr line and an exit code. Mains stay thin:
//
//   int main(int argc, char** argv) {
//     CLI::App app{"...", "eve-score"};
//     eve::cli::CommonOptions common;
//     eve::cli::add_common(app, common, eve::cli::kTorchFree);
//     ... add options bound to a lib Options struct ...
//     return eve::cli::run(app, argc, argv, common, [&] { return eve::score::run(opts); });
//   }
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <string>

namespace eve::cli {

struct CommonOptions {
  int threads = 0;          // 0 = all cores; also sets at::set_num_threads in torch programs
  uint64_t seed = 0;        // torch programs and anything random
  std::string device = "auto";  // torch programs: auto|cpu|cuda|cuda:N
  std::string precision = "fp32";  // torch programs: fp32|bf16 (autocast)
  bool deterministic_routing = false;  // torch programs: no routing noise at inference
  bool no_tf32 = false;  // torch programs: full float32 matrix products on GPUs with fp32
  bool quiet = false;
  bool verbose = false;
};

enum ProgramKind { kTorchFree = 0, kTorch = 1 };

// Adds --threads, --seed, --quiet, --verbose (and --device, --precision,
// --deterministic-routing, --no-tf32 for torch programs) in the
// "Common" group, each also read from an EVE_* environment variable, plus --version.
void add_common(CLI::App& app, CommonOptions& common, ProgramKind kind,
                const std::string& version_extra = {});

// Parses argv, applies logging options, installs signal handlers, runs body and maps
// errors: CLI parse errors and eve::UsageError -> 2, eve::Error -> its exit_code(),
// anything else -> 1. Every error is printed as one line "program: error: ...".
int run(CLI::App& app, int argc, char** argv, const CommonOptions& common,
        const std::function<int()>& body);

}  // namespace eve::cli
