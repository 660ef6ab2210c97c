// The eve-tokenize subcommands (train, encode, decode, info) on a sentencepiece model. In
// the eve-tokenizer library: only eve-tokenize and its tests may link it.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "eve/text/tokenize.h"
#include "eve/text/tokenizer_info.h"

namespace eve::text {

using Sink = std::function<void(std::string_view)>;

struct TrainResult {
  uint64_t texts = 0;  // cleaned texts the model was trained on
  LineStats lines;
  TokenizerInfo info;
  std::string info_path;  // the JSON sidecar written beside the model
};

// Reads and cleans the training text, trains, and writes opts.output and its JSON sidecar
// (tokenizer_info_path) atomically.
TrainResult run_train(const TrainOptions& opts);

// Encodes records or lines; everything written goes through sink in input order.
LineStats run_encode(const EncodeOptions& opts, const Sink& sink);
LineStats run_decode(const DecodeOptions& opts, const Sink& sink);

// The special ids of a model (a trained one, or any sentencepiece model with the pieces
// named in sentencepiece_tokenizer.h).
TokenizerInfo model_info(const std::string& model_path);

}  // namespace eve::text
