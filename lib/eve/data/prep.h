// The prep pipeline: annotation readers turn a dataset's own files into examples that
// reference images; run_prep decodes, resizes and re-encodes every distinct image once,
// stores them in the dataset dir's image shards, and writes <split>.jsonl + manifest.json
// (docs/architecture.md, "File formats").
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace eve::data {

using ordered_json = nlohmann::ordered_json;

// Where an image's bytes are: a whole file, or a byte range of a file (a tar member).
struct ImageSource {
  std::string key;   // store key (no '/', no '.')
  std::string path;  // file holding the bytes
  uint64_t offset = 0;
  int64_t size = -1;  // -1: the whole file
  std::string name;   // how the manifest names it (path relative to the image root, tar member)
};

struct Example {
  std::string split;
  ordered_json record;              // image fields already hold store keys
  std::vector<size_t> images;       // indices into Collection::images
  std::string where;                // "file:line" or "file: [index]" for reports
};

// A sample a reader left out (webdataset: see read_webdataset for the reasons). run_prep
// reports it as it reports a skipped image: counted by reason, listed in the manifest, part
// of --max-bad.
struct SkippedSample {
  std::string name;     // "<shard>:<member>", the member with the problem
  std::string id;       // unique in the collection ("<shard>:<member>@<data offset>")
  std::string reason;   // duplicate-key, name-not-utf8, two-images, text-not-utf8, bad-json, no-image, no-text
  std::string message;
  std::string where;    // "<shard>: <member>", as Example::where names records
};

// Everything one eve-prep command reads.
struct Collection {
  std::string task;  // pairs, retrieval, vqa, nlvr2
  std::vector<Example> examples;
  std::vector<ImageSource> images;  // distinct, first-seen order
  std::vector<SkippedSample> skipped_samples;  // in input order
  ordered_json sources = ordered_json::array();

  // Index of the image at `path` (+ range), adding it on first sight. `name` is relative to
  // the image root and gives the key.
  size_t image(const std::string& path, const std::string& name, uint64_t offset = 0, int64_t size = -1);

 private:
  std::map<std::string, size_t> by_source_;
  std::map<std::string, size_t> keys_;
};

// "SPLIT=FILE" (or just FILE, giving `default_split`).
struct SplitFile {
  std::string split, file;
};
SplitFile parse_split_file(const std::string& arg, const std::string& default_split = "train");

// ---- readers (each appends to `c`; malformed files throw eve::Error naming file and
// line or JSON path, before anything is written) ----

// [{"image", "caption": str | [str]}] -> one {"image","text"} record per caption.
void read_caption_pairs(Collection& c, const SplitFile& f, const std::string& image_root);
// Karpathy train ({"image","caption","image_id"} per caption) or val/test ({"image",
// "caption":[...]}) -> one {"image","texts":[...]} record per image, in first-seen order.
void read_retrieval(Collection& c, const SplitFile& f, const std::string& image_root);
// VQA v2 official question file (+ annotation file, optional for test splits). Image file
// names come from `name_template` with {image_id}, {image_id:012} (zero-padded) and
// {data_subtype}.
void read_vqa_official(Collection& c, const std::string& split, const std::string& questions_file,
                       const std::string& annotations_file, const std::string& image_root,
                       const std::string& name_template);
// The EVE/ALBEF VQA JSON ({"question_id","question","answer","image","dataset"}), VG QA
// included ("dataset": "vg" reads from vg_root).
void read_vqa_eve(Collection& c, const SplitFile& f, const std::string& image_root, const std::string& vg_root);
// NLVR2: official JSON lines (images found from the identifier) or the EVE JSON array
// ({"images":[l,r],"sentence","label"}); detected from the first character.
void read_nlvr2(Collection& c, const SplitFile& f, const std::string& image_root);
// img2dataset/webdataset tar shards: samples of <key>.jpg|.png + <key>.txt and/or <key>.json.
// A sample is a run of members with one key; a member whose extension the current sample
// already has starts a new sample with the same key. A sample is skipped, named by the
// member at fault and added to Collection::skipped_samples, for the first of these (in
// this order): its key is an earlier sample's of the shard (duplicate-key: the first is
// kept), a member name is not valid UTF-8 (name-not-utf8), it has two images, say a.jpg and
// a.png (two-images), its .txt or .json is not valid UTF-8 (text-not-utf8), its .json is
// not JSON, not an object or has a "caption" that is neither a string nor null (bad-json),
// it has no image (no-image) or no caption (no-text). Nothing in a sample stops the shard.
void read_webdataset(Collection& c, const SplitFile& f);

// What one eve-prep subcommand was asked to read (its flags).
struct PrepInputs {
  std::string task;  // pairs, retrieval, vqa, nlvr2, webdataset
  std::vector<std::string> ann, questions, annotations, tars;  // SPLIT=FILE or FILE
  std::string images, vg_images, image_name = "COCO_{data_subtype}_{image_id:012}.jpg", split = "train", shard;
};

// Reads every input of `in` with the task's readers. Throws UsageError for flag problems.
Collection collect_inputs(const PrepInputs& in);

struct PrepOptions {
  std::string out;
  int size = 512;       // shorter side; 0 keeps originals
  int quality = 95;
  double max_bad = 0.001;
  int shard_index = 0, shard_count = 1;
  int threads = 0;
  uint64_t max_pixels = 100'000'000;
  uint64_t shard_bytes = uint64_t{1} << 30;
  int batch_images = 512;  // images per resumable work batch
  // Called after each work batch is safely on disk (batch number, batches in all).
  std::function<void(size_t, size_t)> on_batch_done;
};

// "I/N" -> shard_index, shard_count. Throws UsageError.
void parse_shard(const std::string& arg, int& index, int& count);

struct PrepReport {
  uint64_t images_stored = 0, images_reused = 0, images_skipped = 0;
  uint64_t records_written = 0, records_skipped = 0;
  std::map<std::string, uint64_t> skipped_by_reason;
  double bad_fraction = 0;
};

// Runs the pipeline. Writes the dataset dir; throws TooManyBadInputs (exit 3) after
// writing everything when the fraction of skipped images exceeds max_bad.
PrepReport run_prep(Collection& collection, const PrepOptions& options);

}  // namespace eve::data
