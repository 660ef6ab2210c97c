// eve-score: The official VQA v2, NLVR2 and retrieval metrics
#include <CLI/CLI.hpp>

#include "eve/core/cli.h"
#include "eve/core/unimplemented.h"

int main(int argc, char** argv) {
  CLI::App app{"The official VQA v2, NLVR2 and retrieval metrics", "eve-score"};
  eve::cli::CommonOptions common;
  eve::cli::add_common(app, common, eve::cli::kTorchFree);
  std::string command;
  app.add_subcommand("vqa", "VQA v2 accuracy")->callback([&] { command = "vqa"; });
  app.add_subcommand("nlvr2", "NLVR2 accuracy and consistency")->callback([&] { command = "nlvr2"; });
  app.add_subcommand("retrieval", "Image-text retrieval recall")->callback([&] { command = "retrieval"; });
  app.require_subcommand(1);
  return eve::cli::run(app, argc, argv, common, [&]() -> int {
    eve::not_implemented_yet("eve-score " + command);
  });
}
