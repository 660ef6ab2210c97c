// eve-embed: Embed images or texts with an EVE bundle into .npy matrices
#include <CLI/CLI.hpp>

#include "eve/core/cli.h"
#include "eve/core/unimplemented.h"
#include "eve/model/runtime.h"

int main(int argc, char** argv) {
  CLI::App app{"Embed images or texts with an EVE bundle into .npy matrices", "eve-embed"};
  eve::cli::CommonOptions common;
  eve::cli::add_common(app, common, eve::cli::kTorch, eve::nn::build_info());
  return eve::cli::run(app, argc, argv, common, [&]() -> int {
    eve::nn::init_runtime(common);
    eve::not_implemented_yet("eve-embed");
  });
}
