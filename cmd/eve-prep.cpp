// eve-prep: Turn annotations and images into eve dataset dirs; build the toy world
#include <CLI/CLI.hpp>

#include "eve/core/cli.h"
#include "eve/core/unimplemented.h"

int main(int argc, char** argv) {
  CLI::App app{"Turn annotations and images into eve dataset dirs; build the toy world", "eve-prep"};
  eve::cli::CommonOptions common;
  eve::cli::add_common(app, common, eve::cli::kTorchFree);
  std::string command;
  app.add_subcommand("synth", "Build the built-in toy world")->callback([&] { command = "synth"; });
  app.add_subcommand("pairs", "Caption pairs for pre-training")->callback([&] { command = "pairs"; });
  app.add_subcommand("retrieval", "COCO/Flickr30k Karpathy splits")->callback([&] { command = "retrieval"; });
  app.add_subcommand("vqa", "VQA v2 and Visual Genome QA")->callback([&] { command = "vqa"; });
  app.add_subcommand("nlvr2", "NLVR2")->callback([&] { command = "nlvr2"; });
  app.add_subcommand("webdataset", "img2dataset/webdataset tar shards")->callback([&] { command = "webdataset"; });
  app.require_subcommand(1);
  return eve::cli::run(app, argc, argv, common, [&]() -> int {
    eve::not_implemented_yet("eve-prep " + command);
  });
}
