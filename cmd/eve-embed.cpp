// eve-embed: Embed images or texts with an EVE bundle into .npy matrices
#include <CLI/CLI.hpp>

#include <cstdio>

#include "eve/core/cli.h"
#include "eve/model/runtime.h"
#include "eve/model/summary.h"
#include "eve/core/error.h"
#include "eve/search/embed.h"
#include "eve/search/embed_inputs.h"

int main(int argc, char** argv) {
  CLI::App app{"Embed images or texts with an EVE bundle into .npy matrices", "eve-embed"};
  eve::cli::CommonOptions common;
  eve::cli::add_common(app, common, eve::cli::kTorch, eve::model::build_info());
  eve::search::EmbedOptions o;
  std::string describe, shard, split;
  app.add_option("-m,--model", o.model, "Model bundle directory (needs the itc head)")
      ->option_text("BUNDLE");
  app.add_option("--images", o.images,
                 "Images: dataset dirs, .tar shards, JPEG/PNG files, or files of image paths "
                 "('-' = paths on stdin)")
      ->option_text("SRC ...");
  app.add_option("--split", split,
                 "With dataset dirs in --images: only the images of this split's records "
                 "(DIR/SPLIT.jsonl), in record order")
      ->option_text("SPLIT");
  app.add_option("--texts", o.texts,
                 "Records with \"ids\" or \"ids_list\" from eve-tokenize encode ('-' = stdin)")
      ->option_text("RECORDS");
  app.add_option("-o,--out", o.out,
                 "Output OUT: OUT.npy + OUT.ids.jsonl, or parts OUT-00000.npy + OUT-00000.ids.jsonl")
      ->option_text("OUT");
  app.add_option("--id-field", o.id_field,
                 "Texts: record field holding the row id (default: id, question_id, identifier "
                 "or image, else the record number)");
  app.add_option("-b,--batch-size", o.batch_size,
                 "Inputs per forward pass (default 64; texts for a compat official model: 256, as "
                 "the released evaluation embeds them, since its outputs depend on the batch)")
      ->check(eve::cli::at_least(1));
  app.add_option("--part-size", o.part_size,
                 "Inputs per numbered output part (0 = one output unless --shard)")
      ->capture_default_str();
  app.add_flag("--half", o.half, "Write float16 instead of float32");
  app.add_flag("--overwrite", o.overwrite,
               "Make again outputs found at --out that were made from other inputs, another bundle or "
               "other options (without it they are refused)");
  app.add_option("--shard", shard, "Make only the parts p with p % N == I")->option_text("I/N");
  app.add_option("--max-bad", o.max_bad, "Exit 3 when more than this fraction of images is bad")
      ->capture_default_str()->check(eve::cli::between(0, 1));
  app.add_option("--describe", describe,
                 "Print a summary of the bundle BUNDLE (parameters total and active per token, "
                 "layers, experts, resolution, heads) and exit")
      ->option_text("BUNDLE");
  std::string classes;
  std::vector<std::string> templates;
  app.add_option("--group-by", o.group_by,
                 "Texts: one row per value of this record field, the l2-normalised mean of its texts' "
                 "rows (class embeddings from several prompts), with the value as id")
      ->option_text("FIELD")->group("Zero-shot classes");
  app.add_option("--classes", classes,
                 "Print one record {\"class\", \"texts\"} per class name in FILE (one per line) with "
                 "the --template prompts, for eve-tokenize encode and --group-by class, and exit")
      ->option_text("FILE")->group("Zero-shot classes");
  app.add_option("--template", templates, "A prompt with {} for the class name (repeatable; the default is 'a photo of a {}.')")
      ->option_text("T")->group("Zero-shot classes");
  return eve::cli::run(app, argc, argv, common, [&]() -> int {
    if (!classes.empty()) {
      if (templates.empty()) templates = {"a photo of a {}."};
      std::fputs(eve::search::class_prompts(classes, templates).c_str(), stdout);
      return std::fflush(stdout) == 0 ? 0 : 1;
    }
    if (!templates.empty()) throw eve::UsageError("--template goes with --classes");
    if (!describe.empty()) {
      std::fputs(eve::model::format_summary(eve::model::summarize_bundle(describe)).c_str(), stdout);
      return 0;
    }
    if (!split.empty()) o.images = eve::search::split_image_sources(o.images, split);
    if (!shard.empty()) eve::search::parse_shard(shard, o.shard_index, o.shard_count);
    eve::search::run_embed(o, common);
    return 0;
  });
}
