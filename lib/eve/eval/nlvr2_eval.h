// NLVR2 accuracy and consistency as the official script (lil-lab/nlvr nlvr2/eval/metrics.py)
// computes them:
//  - predictions: CSV lines "identifier,prediction[,ignored...]"; each whole line is
//    stripped, split on ",", and a later line for the same identifier wins; no per-field
//    trimming ("id, True" is a wrong answer). Lines end at "\n", "\r\n" or a lone "\r"
//    (Python's universal newlines). A first line whose identifier is "identifier" is a
//    header; blank lines are skipped (the official script crashes on them).
//  - accuracy: label lines whose prediction.lower() == label.lower(), over all label lines
//    (a repeated label line counts twice).
//  - consistency: identifiers grouped with their third dash-field (the image pair) blanked,
//    "dev-850-0-0" -> "dev-850--0"; the fraction of groups whose every example is correct.
// Unlike the official script, a label without a prediction is an error, not a silent exit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace eve::eval {

struct Nlvr2Labels {
  std::string path;
  std::vector<std::string> identifiers;
  std::vector<std::string> labels;  // JSON booleans are read as "True"/"False"
  std::vector<uint64_t> lines;      // line of each record, for messages
};

struct Nlvr2Predictions {
  std::string path;
  std::unordered_map<std::string, std::string> by_identifier;
  size_t lines = 0;       // prediction lines read (header and blank lines not counted)
  size_t duplicates = 0;  // lines overridden by a later line for the same identifier
  bool header = false;
};

// JSON Lines with "identifier" and "label" per record (the official dev.json/test1.json, or
// eve-prep's nlvr2 records). `path` only names the input in errors.
Nlvr2Labels parse_nlvr2_labels(std::string_view text, const std::string& path);
Nlvr2Predictions parse_nlvr2_predictions(std::string_view text, const std::string& path);

// "dev-850-0-0" -> "dev-850--0"; throws eve::Error when there is no third field.
std::string nlvr2_consistency_key(const std::string& identifier);

struct Nlvr2Scores {
  double accuracy = 0;     // fraction in [0, 1]
  double consistency = 0;  // fraction in [0, 1]
  size_t examples = 0;
  size_t correct = 0;
  size_t groups = 0;
  size_t consistent_groups = 0;
  size_t unknown_predictions = 0;  // predicted identifiers that have no label (ignored)
};

// Throws eve::Error naming how many labels have no prediction and the first identifiers.
Nlvr2Scores evaluate_nlvr2(const Nlvr2Labels& labels, const Nlvr2Predictions& predictions);

}  // namespace eve::eval
