// The record logic of eve-tokenize, independent of the tokenizer library: which fields of a
// JSONL record are encoded and where the ids go, cleaning, [CLS]/[SEP] wrapping and
// truncation, decoding records and lines of ids, reading training text, and the
// order-preserving, multi-threaded line pipeline with bad-record accounting. The
// sentencepiece side (sentencepiece_commands.h) plugs a piece encoder/decoder into it.
//
// Encoding a JSONL record (docs/architecture.md, "File formats"): for each encoded text
// field the ids are inserted right after the field, as "ids" (a string field: [cls, ...,
// sep]) or "ids_list" (a list of strings: one id list per string). Existing "ids"/"ids_list"
// keys are replaced; every other key is carried through untouched and in its original
// order. Without --field, the fields text, texts, question and sentence are encoded,
// whichever the record has; a record with none of them, or with two fields that would both
// write "ids", is a bad record.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "eve/core/error.h"
#include "eve/text/clean.h"
#include "eve/text/tokenizer_info.h"

namespace eve::text {

// EVE's tokenizer call: at most 40 tokens, [CLS] and [SEP] included.
constexpr int kDefaultMaxTokens = 40;
// The record fields that hold text, in the order they are looked for.
extern const std::vector<std::string> kTextFields;  // text, texts, question, sentence

// One record (or line) that cannot be processed: `message` is the one-line reason shown
// with file:line, `reason` the short category used when bad records are counted.
class RecordError : public Error {
 public:
  RecordError(std::string message, std::string reason)
      : Error(std::move(message)), reason_(std::move(reason)) {}
  const std::string& reason() const { return reason_; }

 private:
  std::string reason_;
};

struct BadRecordOptions {
  bool skip_bad = false;  // skip and count instead of failing at the first bad record
  double max_bad = 1.0;   // with skip_bad: fail (exit 3) when skipped/records exceeds this
};

struct EncodeOptions {
  std::string model;
  std::vector<std::string> inputs{"-"};
  std::vector<std::string> fields;  // empty: kTextFields, whichever the record has
  std::optional<CleanMode> clean;   // unset: question for "question", caption otherwise
  int max_words = -1;               // < 0: the cleaning mode's default
  int max_tokens = kDefaultMaxTokens;
  bool plain = false;               // one text line in, one line of space-separated ids out
  BadRecordOptions bad;
  int threads = 0;
};

struct DecodeOptions {
  std::string model;
  std::vector<std::string> inputs{"-"};
  std::vector<std::string> fields;  // empty: "ids" and "ids_list"
  bool plain = false;               // one line of space-separated ids in, one text line out
  bool keep_special = false;        // write special tokens as their pieces ("[MASK]")
  BadRecordOptions bad;
  int threads = 0;
};

struct TrainOptions {
  // Plain text files (one text per line), JSONL record files (*.jsonl), or dataset
  // directories (every *.jsonl directly inside, in name order).
  std::vector<std::string> inputs;
  std::string output;               // the .model file; the ids go to tokenizer_info_path()
  std::string model_type = "bpe";   // bpe or unigram
  int vocab_size = 8000;
  double character_coverage = 1.0;
  std::vector<std::string> fields;  // JSONL fields; empty: kTextFields
  std::optional<CleanMode> clean;   // as for encoding
  int max_words = -1;
  BadRecordOptions bad;
  int threads = 0;
  bool quiet_library = true;        // silence sentencepiece's own training log
};

struct CleanOptions {
  std::vector<std::string> inputs{"-"};
  CleanMode clean = CleanMode::caption;
  int max_words = -1;  // < 0: the cleaning mode's default
  BadRecordOptions bad;
  int threads = 0;
};

// Counts of one pass over the input lines.
struct LineStats {
  uint64_t records = 0;  // lines that were processed (blank JSONL lines are not records)
  uint64_t skipped = 0;
  std::map<std::string, uint64_t> reasons;  // skipped records by reason
  // "skipped 2 of 10 records: 1 invalid JSON, 1 missing field" or "" when none.
  std::string summary() const;
};

// Runs fn on every line of the inputs ("-" = stdin) in batches on `threads` threads and
// passes the results to sink in input order, so the output never depends on the thread
// count. fn returns the text to write (possibly empty) or throws RecordError / eve::Error;
// the first such error stops the run as "file:line: message" unless bad.skip_bad is set,
// in which case the line is skipped and counted. Blank lines are passed to fn only when
// skip_blank is false. Throws TooManyBadInputs after the last line when the skipped
// fraction exceeds bad.max_bad.
LineStats process_lines(const std::vector<std::string>& inputs, int threads,
                        const BadRecordOptions& bad, bool skip_blank,
                        const std::function<std::string(std::string_view)>& fn,
                        const std::function<void(std::string_view)>& sink);

// `eve-tokenize clean`: each input line cleaned, one line out; a line empty after cleaning
// is a bad record.
LineStats clean_lines(const CleanOptions& opts, const std::function<void(std::string_view)>& sink);

// Text pieces -> ids, without special tokens (the sentencepiece model's Encode).
using PieceEncoder = std::function<std::vector<int>(const std::string&)>;
// Ids (no special tokens) -> text (the sentencepiece model's Decode).
using PieceDecoder = std::function<std::string(const std::vector<int>&)>;

class RecordEncoder {
 public:
  RecordEncoder(const EncodeOptions& opts, TokenizerInfo info, PieceEncoder encode);

  // Cleans `text` with `mode` and returns [cls, pieces..., sep], keeping at most
  // max_tokens ids ([SEP] always last).
  std::vector<int> encode_text(std::string_view text, CleanMode mode) const;
  // One JSONL line -> the record with ids added, as one line with "\n".
  std::string encode_json_line(std::string_view line) const;
  // One text line -> space-separated ids with "\n".
  std::string encode_plain_line(std::string_view line) const;
  // The cleaning mode used for a field.
  CleanMode mode_for(const std::string& field) const;

 private:
  EncodeOptions opts_;
  TokenizerInfo info_;
  PieceEncoder encode_;
};

class RecordDecoder {
 public:
  RecordDecoder(const DecodeOptions& opts, TokenizerInfo info, PieceDecoder decode,
                std::function<std::string(int)> id_to_piece);

  std::string decode_ids(const std::vector<int>& ids) const;
  // Adds "decoded" after "ids" and "decoded_list" after "ids_list" (for --field F: F's
  // decoded text goes to "F_decoded").
  std::string decode_json_line(std::string_view line) const;
  std::string decode_plain_line(std::string_view line) const;

 private:
  DecodeOptions opts_;
  TokenizerInfo info_;
  PieceDecoder decode_;
  std::function<std::string(int)> id_to_piece_;
};

// The cleaned training texts of one input line: a plain text line gives its cleaned text
// (nothing when empty after cleaning); a JSONL record gives one text per string of each
// text field. `jsonl` says which kind the line is.
std::vector<std::string> training_texts(std::string_view line, bool jsonl,
                                        const TrainOptions& opts);
// The files behind TrainOptions::inputs (directories expanded to their *.jsonl files, in
// name order). Throws eve::Error for a missing input or a directory without *.jsonl.
std::vector<std::string> expand_training_inputs(const std::vector<std::string>& inputs);
bool is_jsonl_path(const std::string& path);

}  // namespace eve::text
