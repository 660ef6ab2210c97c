// Model bundles (docs/architecture.md, "File formats"): a directory with config.json,
// model.safetensors (tensor names = the official EVE state-dict keys), and, when known,
// tokenizer.model and answers.json. Torch code only; torch-free code uses eve/model/summary.h.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "eve/model/eve_model.h"

namespace eve::model {

struct LoadOptions {
  // Tolerate parameters missing from the file (they keep their fresh initialisation),
  // tensors the model has no use for, and head tensors of another shape; all are reported.
  // Without it any of these is an error. Backbone shape mismatches are always errors.
  bool allow_partial = false;
  int image_res = 0;                       // 0 = the bundle's; else position tables resize
  bool replace_heads = false;              // build the model with `heads` instead
  std::vector<std::string> heads;
  int num_answers = 0;                     // > 0: VQA classifier size for new heads
  // Parameters whose names start with one of these keep their fresh initialisation even
  // where the file has a tensor of their shape (a head trained for other labels).
  std::vector<std::string> fresh_prefixes;
};

struct LoadReport {
  std::vector<std::string> initialised;  // "name [shape]" of parameters left at fresh init
  std::vector<std::string> ignored;      // "name [shape]" of file tensors the model lacks
  std::vector<std::string> resized;      // "name [from] -> [to]" position tables resized
};

// Copies the tensors of a safetensors file into the model's parameters (any float dtype in
// the file; converted to each parameter's dtype and device). Throws one eve::Error listing
// every missing, unexpected or mis-shaped tensor by name with expected and found shapes.
LoadReport load_weights(EveModelImpl& model, const std::string& path, const LoadOptions& opt = {});
// Writes every parameter as float32 (names = named_parameters()), atomically.
void save_weights(EveModelImpl& model, const std::string& path,
                  const std::map<std::string, std::string>& metadata = {});

struct Bundle {
  EveModel model{nullptr};
  ModelConfig config;
  LoadReport report;
  std::string dir;
  std::string tokenizer;  // path of tokenizer.model in the bundle, "" when absent
  std::string answers;    // path of answers.json in the bundle, "" when absent
};

// Checks a bundle's tokenizer.model against its config: more pieces than word-embedding
// rows, or special ids (pad, cls, sep, mask, unk) other than the tokenizer's pieces for
// them, throw eve::Error naming both numbers; fewer pieces (padding rows, as released
// BEiT-3/VLMo/EVE checkpoints have) are logged as a note.
void check_tokenizer(const ModelConfig& config, const std::string& tokenizer);

// Reads config.json (applying the options' overrides), builds the model and loads the
// weights; a tokenizer.model in the bundle is checked (check_tokenizer).
Bundle load_bundle(const std::string& dir, const LoadOptions& opt = {});

struct SaveOptions {
  std::string tokenizer;  // a tokenizer.model to copy in ("" = none)
  std::string answers;    // an answers.json to copy in ("" = none)
};
// Creates `dir` if needed and writes config.json + model.safetensors (+ the copies).
void save_bundle(EveModelImpl& model, const std::string& dir, const SaveOptions& opt = {});

}  // namespace eve::model
