// eve-rank: exact top-k over embedding matrices (.npy parts), written as JSONL ranks.
// Torch-free header (the program's main includes it).
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "eve/core/cli.h"

namespace eve::search {

struct RankOptions {
  std::vector<std::string> queries;      // .npy parts, concatenated by rows
  std::vector<std::string> gallery;      // .npy parts, concatenated by rows
  std::vector<std::string> query_ids;    // .ids.jsonl parts (default: beside each .npy)
  std::vector<std::string> gallery_ids;  // .ids.jsonl parts (default: beside each .npy)
  int k = 10;
  std::string out = "-";         // ranks JSONL
  std::string scores_out;        // optional full score matrix (.npy, float32)
  int64_t max_scores = int64_t{1} << 28;  // refuse --scores-out above this many cells
};

// Loads the parts, ranks, writes `out` (atomically when it is a file) and returns 0.
int run_rank(const RankOptions& opts, const cli::CommonOptions& common);

// The ids of one .npy part: "<stem>.ids.jsonl" beside "<stem>.npy".
std::string default_ids_path(const std::string& npy_path);

}  // namespace eve::search
