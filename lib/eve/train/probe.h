// eve-finetune --task probe: a linear probe of a bundle's frozen vision backbone, the check of
// what pre-training learned before anything is spent on fine-tuning (docs: eve-finetune(1),
// "LINEAR PROBE"). Torch-free header: the program's main fills ProbeOptions.
//
// Records come from a labels file, one JSON object per line:
//   {"id": "...", "image": "path under --images", "split": "...", "<field>": "class" | 3 | [...]}
// A string or number is one class (a number's class is its JSON text); a list marks the
// values present (multi-label: one binary probe per value seen in the file).
//
// Each image is decoded and resized as eve-embed prepares images for evaluation, passed
// through the backbone in vision mode without gradients, and pooled: the CLS token, the mean
// of the patch tokens, or both concatenated (after the final LayerNorm). A logistic
// regression on standardised features is fitted on the training part and scored on the
// held-out part (fit_linear_probe).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "eve/core/cli.h"

namespace eve::train {

struct ProbeOptions {
  std::string init;                  // the bundle whose backbone is probed
  std::string labels;                // labels JSONL
  std::string images;                // root the records' "image" paths are relative to
  std::vector<std::string> fields;   // fields probed, each on its own
  std::string features = "both";     // cls | mean | both
  std::string baseline;              // "" or "fresh": the same probe on a new model of the config
  double holdout = 0.25;             // fraction of records held out for scoring
  std::vector<std::string> splits;   // keep only records whose "split" is one of these
  std::string out;                   // run dir: probe.json
  int batch_size = 64;               // images per backbone pass
};

// Fewest records (after --split) a probe accepts: fewer leave no meaningful held-out part.
constexpr int64_t kProbeMinRecords = 20;

// Whether the record `id` belongs to the held-out part: a hash of (seed, id) against
// `fraction`, so a record's side never depends on the other records.
bool probe_held_out(const std::string& id, uint64_t seed, double fraction);

struct ProbeFit {
  double accuracy = 0;     // top-1 on the held-out rows
  double majority = 0;     // held-out share of the most common training class
  double l2 = 0;           // the weight penalty chosen on the selection slice
  int64_t train = 0, test = 0;
};

// Fits and scores a multinomial logistic regression. `features` holds rows x dim floats,
// row-major; `labels` a class in [0, classes) per row; `held_out` marks the scored rows.
// Features are standardised with the training rows' mean and deviation. The L2 penalty is
// chosen from a fixed grid by accuracy on every fifth training row (fitted on the others),
// then the model is fitted again on all training rows. Full-batch L-BFGS with a fixed
// iteration budget: the same inputs give the same result on the CPU. Throws eve::Error when
// either part is empty.
ProbeFit fit_linear_probe(const std::vector<float>& features, int64_t dim, const std::vector<int>& labels,
                          int classes, const std::vector<bool>& held_out);

// Runs the probe and writes <out>/probe.json; returns the exit code. Throws eve::UsageError
// for bad options and eve::Error (naming the labels file and line) for bad records.
int run_probe(const ProbeOptions& options, const cli::CommonOptions& common);

}  // namespace eve::train
