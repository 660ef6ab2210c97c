// eve-embed: dual-encoder embeddings of whole image or text collections (docs/architecture.md,
// "File formats"). Each row is the CLS of a separate vision or text pass through the ITC
// projection head, L2-normalised (docs/architecture.md, "Fine-tuning and retrieval
// evaluation"). Torch-free header.
//
// Inputs, read as a stream in this order (memory is bounded by the batch, never by the
// collection):
//   images  every value of `images` in turn: a dataset dir of eve-prep (its image store, in
//           index order, id = key); a tar archive "*.tar" (members ending .jpg/.jpeg/.png,
//           id = member name without its extension; other members are ignored; a member
//           whose id an earlier member of the archive has is a bad image, duplicate-key,
//           and the first is kept); a JPEG or PNG file (id = the path); "-" or any other
//           file: a list of image paths, one per line, blank lines ignored (id = the path
//           as written). A name or path that is not valid UTF-8 gives no id: that image is
//           bad (name-not-utf8).
//   texts   JSONL records ("-" = stdin) carrying "ids" (one row) or "ids_list" (one row per
//           list), as eve-tokenize encode writes them. Row id: the field `id_field`; by
//           default the first of "id", "question_id", "identifier", "image" the record has,
//           else the record number (from 0). Rows of an "ids_list" get the id
//           "<value>#<k>" (k from 0), the text ids eve-score retrieval understands.
// Texts are padded to the model's max_text_len; longer ones are cut there with [SEP] kept
// last.
//
// Grouped texts (group_by FIELD, zero-shot class embeddings): every text's l2-normalised row
// is added to the sum of its record's FIELD value, and each sum is l2-normalised again, so a
// class is the direction of the mean of its prompts' embeddings, as CLIP-style evaluations
// ensemble their templates. One row per distinct value, in order of first appearance, with
// the value as its id; all texts of an "ids_list" belong to their record's value. A record
// without FIELD is an error naming the file and line. Written as one output (no parts).
//
// Outputs: with part_size 0 and no sharding, OUT.npy + OUT.ids.jsonl; otherwise numbered
// parts OUT-00000.npy + OUT-00000.ids.jsonl, part p holding inputs [p*part_size,
// (p+1)*part_size) minus bad images. Every file is written atomically (ids first, then the
// part's OUT[-p].meta.json, matrix last). With shard I/N a run makes the parts p with
// p % N == I, so the parts of all shards concatenated in number order are the whole
// collection in input order.
//
// The meta file says what the rows are: eve's version, the modality, rows, dtype, that rows
// are l2-normalised, and under "made_from" everything that decides their values: the
// bundle (path, sha256 of model.safetensors and, for texts, of tokenizer.model), compat
// mode, inference routing, which CLS and projection head, the image resolution and
// preprocessing or the text length, the inputs as given, the part size and the batch where
// it changes the outputs (compat official texts). A rerun skips a part whose three files
// exist and whose made_from equals this run's; a part made otherwise (or without a meta
// file) is refused before any work, naming the file and what differs, unless `overwrite`
// is set, which makes it again.
//
// Bad images (missing, unreadable, not an image, truncated, a repeated tar id, ...) are
// skipped, counted by reason and reported; past max_bad (a fraction of the images seen)
// run_embed throws
// TooManyBadInputs after every part has been written.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "eve/core/cli.h"

namespace eve::search {

struct EmbedOptions {
  std::string model;                 // bundle dir
  std::vector<std::string> images;   // image sources (see above); or
  std::string texts;                 // text records ("-" = stdin)
  std::string out;                   // OUT or OUT.npy
  std::string id_field;              // texts: row id field ("" = the defaults above)
  std::string group_by;              // texts: average the rows of each value of this field
  int batch_size = 0;                // inputs per pass; 0 = default_embed_batch()
  int64_t part_size = 0;             // inputs per part; 0 = one output
  bool half = false;                 // float16 instead of float32
  int shard_index = 0, shard_count = 1;
  double max_bad = 0.001;            // fraction of bad images tolerated
  bool overwrite = false;            // redo parts made from other inputs, bundle or options
};

// The batch eve-embed uses without --batch-size: 64, except texts for a compat official
// model, which go 256 at a time as the released evaluation embeds them (with capacity
// limits at inference, a compat official model's outputs depend on the batch).
int default_embed_batch(bool texts, bool official);

struct EmbedReport {
  int64_t rows = 0;                   // rows written by this run
  int64_t parts_written = 0, parts_skipped = 0;
  int64_t bad = 0;                    // images skipped
  std::map<std::string, int64_t> bad_by_reason;
  int64_t truncated = 0;              // texts cut to max_text_len
};

// Embeds the inputs and writes the outputs; throws eve::Error (UsageError for bad options,
// TooManyBadInputs past max_bad).
EmbedReport run_embed(const EmbedOptions& opts, const cli::CommonOptions& common);

// Parses "I/N" (0 <= I < N) for --shard; throws UsageError.
void parse_shard(const std::string& text, int& index, int& count);

// "<stem>-<part, 5 digits>.npy" / ".ids.jsonl", or "<stem>.npy" when part < 0. `out` may
// end with ".npy".
std::string embed_output_path(const std::string& out, int64_t part, bool ids);
// The part's "<stem>[-<part>].meta.json".
std::string embed_meta_path(const std::string& out, int64_t part);

}  // namespace eve::search
