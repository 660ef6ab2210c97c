// eve-prep: Turn annotations and images into eve dataset dirs; build the toy world
#include <CLI/CLI.hpp>

#include "eve/core/cli.h"
#include "eve/core/log.h"
#include "eve/core/unimplemented.h"
#include "eve/data/synth.h"

int main(int argc, char** argv) {
  CLI::App app{"Turn annotations and images into eve dataset dirs; build the toy world", "eve-prep"};
  eve::cli::CommonOptions common;
  eve::cli::add_common(app, common, eve::cli::kTorchFree);
  std::string command;

  eve::data::SynthOptions synth;
  auto* s = app.add_subcommand("synth", "Build the built-in toy world (raw annotations + JPEGs)");
  s->add_option("--out", synth.out, "Output directory")->required();
  s->add_option("--count", synth.count, "Images in the pool (80/10/10 train/val/test)")->capture_default_str();
  s->add_option("--size", synth.size, "Image side in pixels")->capture_default_str();
  s->add_option("--questions", synth.questions_per_image, "VQA questions per image")->capture_default_str();
  s->add_option("--nlvr-sets", synth.nlvr_sets, "NLVR2 sets of 4 pairs x 2 sentences (-1: count/8)")
      ->capture_default_str();
  s->add_option("--quality", synth.quality, "JPEG quality")->capture_default_str();
  s->callback([&] { command = "synth"; });

  app.add_subcommand("pairs", "Caption pairs for pre-training")->callback([&] { command = "pairs"; });
  app.add_subcommand("retrieval", "COCO/Flickr30k Karpathy splits")->callback([&] { command = "retrieval"; });
  app.add_subcommand("vqa", "VQA v2 and Visual Genome QA")->callback([&] { command = "vqa"; });
  app.add_subcommand("nlvr2", "NLVR2")->callback([&] { command = "nlvr2"; });
  app.add_subcommand("webdataset", "img2dataset/webdataset tar shards")->callback([&] { command = "webdataset"; });
  app.require_subcommand(1);
  return eve::cli::run(app, argc, argv, common, [&]() -> int {
    if (command == "synth") {
      synth.seed = common.seed;
      synth.threads = common.threads;
      auto r = eve::data::write_synth_world(synth);
      eve::log::info("synth: {} images, {} NLVR2 images, {} captions, {} questions, {} statements in {}", r.images,
                     r.nlvr_images, r.captions, r.questions, r.statements, synth.out);
      return 0;
    }
    eve::not_implemented_yet("eve-prep " + command);
  });
}
