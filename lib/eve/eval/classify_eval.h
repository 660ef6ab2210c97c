// eve-score classify: zero-shot classification scored from eve-rank's output, images as
// queries and class embeddings as the gallery (README, "Zero-shot classification").
//
// Gold labels are JSON Lines, one record per image: the image's id in `id_field` (as
// eve-embed names the image's row, so as eve-rank names the query) and its class in `field`,
// either one class (a string, or a number such as a count) or a non-empty list of classes,
// any of which is correct (a multi-label attribute such as the colours present). Classes
// compare by text: a number matches the class id with the same digits. eve-prep synth's
// labels.jsonl has this form.
//
// Ranks: {"query": image id, "results": [[class id, score], ...]} per line, best first. Every
// ranked image must have a gold record; gold records without a ranked image are not scored,
// so one labels file serves any subset of its images.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "eve/eval/score.h"

namespace eve::eval {

struct ClassifyScoreOptions {
  std::string gold;              // JSONL labels
  std::string ranks;             // eve-rank JSONL
  std::string field;             // the attribute scored
  std::string id_field = "id";   // the gold field naming the image
  int confused = 10;             // most confused pairs listed
};

// Each image's correct classes as text (one for a single-label attribute).
struct ClassifyGold {
  std::string path;
  std::unordered_map<std::string, std::vector<std::string>> classes;
  bool multi_label = false;  // some record's field is a list
};
ClassifyGold parse_classify_gold(const std::string& path, const std::string& field,
                                 const std::string& id_field);

// One ranked image: its id and its classes, best first.
struct RankedImage {
  std::string id;
  std::vector<std::string> classes;
};
// Every query must be in `gold` (else eve::Error naming the ranks file and line).
std::vector<RankedImage> parse_class_ranks(const std::string& path, const ClassifyGold& gold);

struct ClassifyScores {
  double top1 = 0, top5 = 0;  // percent of the ranked images
  int64_t images = 0;
  int64_t classes = 0;          // distinct classes among the ranked results
  double chance_top1 = 0;       // percent: a uniformly random class of those
  std::string majority_class;   // the class most images have
  double majority_top1 = 0;     // percent: always answering the majority class
  size_t min_results = 0;       // the fewest results any image has
  struct PerClass {
    std::string name;
    int64_t images = 0;  // ranked images that have the class
    double top1 = 0;     // percent of them whose first result is correct
  };
  std::vector<PerClass> per_class;  // by name
  struct Confusion {
    std::string gold, predicted;
    int64_t count = 0;
  };
  std::vector<Confusion> confused;  // most frequent first, at most `confused_pairs`
  int64_t unreachable = 0;          // images none of whose classes was ranked
  std::vector<std::string> unreachable_ids;
};
// A top-1 miss counts, for a multi-label image, once under each of its classes.
ClassifyScores evaluate_classify(const ClassifyGold& gold, const std::vector<RankedImage>& ranks,
                                 int confused_pairs);

// {"top1", "top5", "images", "classes", "chance_top1", "majority_class", "majority_top1",
//  "multi_label", "per_class": {class: {"images", "top1"}}, "confused": {"gold -> predicted":
//  count}}, percentages in percent.
ordered_json score_classify(const ClassifyScoreOptions& options);

}  // namespace eve::eval
