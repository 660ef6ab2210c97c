// eve-prep: Turn annotations and images into eve dataset dirs; build the toy world
#include <CLI/CLI.hpp>
#include <malloc.h>

#include "eve/core/cli.h"
#include "eve/core/log.h"
#include "eve/data/merge.h"
#include "eve/data/prep.h"
#include "eve/data/synth.h"

namespace {

using Inputs = eve::data::PrepInputs;

void add_output_options(CLI::App* s, eve::data::PrepOptions& o, Inputs& in) {
  s->add_option("-o,--out", o.out, "Output dataset dir")->required();
  s->add_option("--size", o.size, "Resize so the shorter side is N pixels (0 keeps originals)")->capture_default_str();
  s->add_option("--quality", o.quality, "JPEG quality of re-encoded images")->capture_default_str();
  s->add_option("--max-bad", o.max_bad, "Fraction of bad images tolerated before exit 3")->capture_default_str();
  s->add_option("--shard", in.shard, "Do the I-th of N disjoint parts (I/N)");
  s->add_option("--max-pixels", o.max_pixels, "Refuse images with more pixels (from the header)")->capture_default_str();
  s->add_option("--shard-bytes", o.shard_bytes, "Size limit of one image tar shard")->capture_default_str();
}

}  // namespace

int main(int argc, char** argv) {
  // Image buffers of a few MB are allocated and freed per image on every thread: keep them
  // in the heap instead of mapping, faulting in and returning fresh pages each time.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  CLI::App app{"Turn annotations and images into eve dataset dirs; build the toy world", "eve-prep"};
  eve::cli::CommonOptions common;
  eve::cli::add_common(app, common, eve::cli::kTorchFree);
  std::string command;

  eve::data::SynthOptions synth;
  auto* s = app.add_subcommand("synth", "Build the built-in toy world (raw annotations + JPEGs)");
  s->add_option("-o,--out", synth.out, "Output directory")->required();
  s->add_option("--count", synth.count, "Images in the pool (80/10/10 train/val/test)")->capture_default_str();
  s->add_option("--size", synth.size, "Image side in pixels")->capture_default_str();
  s->add_option("--questions", synth.questions_per_image, "VQA questions per image (the pool's and the VG QA's)")->capture_default_str();
  s->add_option("--nlvr-sets", synth.nlvr_sets, "NLVR2 sets of 4 pairs x 2 sentences (-1: count/8)")
      ->capture_default_str();
  s->add_option("--quality", synth.quality, "JPEG quality")->capture_default_str();
  s->callback([&] { command = "synth"; });

  eve::data::PrepOptions prep;
  Inputs in;
  auto* pairs = app.add_subcommand("pairs", "Caption pairs for pre-training ([{\"image\",\"caption\"}])");
  pairs->add_option("--ann", in.ann, "SPLIT=FILE annotation JSON (FILE alone: train)")->required();
  pairs->add_option("--images", in.images, "Image root the annotation paths are relative to");
  add_output_options(pairs, prep, in);
  pairs->callback([&] { command = "pairs"; });

  auto* ret = app.add_subcommand("retrieval", "COCO/Flickr30k Karpathy splits");
  ret->add_option("--ann", in.ann, "SPLIT=FILE Karpathy JSON (e.g. train=coco_train.json)")->required();
  ret->add_option("--images", in.images, "Image root");
  add_output_options(ret, prep, in);
  ret->callback([&] { command = "retrieval"; });

  auto* vqa = app.add_subcommand("vqa", "VQA v2 (official files) and EVE/ALBEF/VG QA JSON");
  vqa->add_option("--questions", in.questions, "SPLIT=FILE official VQA v2 question file");
  vqa->add_option("--annotations", in.annotations, "SPLIT=FILE official VQA v2 annotation file");
  vqa->add_option("--ann", in.ann, "SPLIT=FILE EVE/ALBEF VQA JSON (VG QA entries included)");
  vqa->add_option("--images", in.images, "Image root (COCO images)");
  vqa->add_option("--vg-images", in.vg_images, "Image root of \"dataset\": \"vg\" entries");
  vqa->add_option("--image-name", in.image_name, "File name of an official question's image")->capture_default_str();
  add_output_options(vqa, prep, in);
  vqa->callback([&] { command = "vqa"; });

  auto* nlvr = app.add_subcommand("nlvr2", "NLVR2 (official JSON lines or EVE JSON)");
  nlvr->add_option("--ann", in.ann, "SPLIT=FILE (e.g. dev=dev.json)")->required();
  nlvr->add_option("--images", in.images, "Image root");
  add_output_options(nlvr, prep, in);
  nlvr->callback([&] { command = "nlvr2"; });

  auto* wds = app.add_subcommand("webdataset", "img2dataset/webdataset tar shards into caption pairs");
  wds->add_option("--input", in.tars, "Tar shard(s)")->required();
  wds->add_option("--split", in.split, "Split name of the records")->capture_default_str();
  add_output_options(wds, prep, in);
  wds->callback([&] { command = "webdataset"; });

  eve::data::MergeOptions merge;
  bool copy = false;
  auto* mrg = app.add_subcommand("merge", "Merge dataset dirs (the parts of a --shard run) into one");
  mrg->add_option("-o,--out", merge.out, "Merged dataset dir (must not exist)")->required();
  mrg->add_flag("--copy", copy, "Copy the image shards instead of hard-linking them");
  mrg->add_option("parts", merge.parts, "Dataset dirs, in the order their records are wanted")->required();
  mrg->callback([&] { command = "merge"; });

  app.require_subcommand(1);
  return eve::cli::run(app, argc, argv, common, [&]() -> int {
    using namespace eve::data;
    if (command == "synth") {
      synth.seed = common.seed;
      synth.threads = common.threads;
      auto r = write_synth_world(synth);
      eve::log::info("synth: {} images, {} NLVR2 images, {} captions, {} questions (+{} VG-style, +{} colour questions), {} statements in {}",
                     r.images, r.nlvr_images, r.captions, r.questions, r.vg_questions, r.color_questions, r.statements,
                     synth.out);
      return 0;
    }
    if (command == "merge") {
      merge.hard_links = !copy;
      auto r = merge_datasets(merge);
      for (const auto& w : r.warnings) eve::log::warn("merge: {}", w);
      if (r.up_to_date)
        eve::log::info("merge: {} is up to date ({} images, {} records); nothing to do", merge.out, r.images, r.records);
      else
        eve::log::info("merge: {} parts into {}: {} images ({} found in several parts, stored once), {} shards "
                       "({} hard-linked, {} copied), {} records",
                       merge.parts.size(), merge.out, r.images, r.duplicate_images, r.shards, r.shards_linked,
                       r.shards_copied, r.records);
      return 0;
    }
    prep.threads = common.threads;
    if (!in.shard.empty()) parse_shard(in.shard, prep.shard_index, prep.shard_count);
    in.task = command;
    Collection c = collect_inputs(in);
    auto r = run_prep(c, prep);
    eve::log::info("prep: {} images stored ({} from an interrupted run), {} records written to {}", r.images_stored,
                   r.images_reused, r.records_written, prep.out);
    return 0;
  });
}
